"""Hostile input and secrets: what a signed URL carries never shows, the queue and its socket are the
owner's only, TLS is verified unless the user says otherwise (and then we say so), redirects are bounded.

Real processes (`getm-tui ...` as a user runs it), real loopback servers, including an HTTPS one whose
certificate comes from a throwaway CA (trustme) that the system does not trust.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import socket
import sqlite3
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from getm_tui.config import Settings
from getm_tui.runner import protocol as P
from getm_tui.runner.endpoint import authkey, socket_path
from tests.helpers.faultserver import FaultServer
from tests.helpers.runner_util import add, cli, env_for, jobs, wait_for

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
DATA = random.Random(51).randbytes(3 * MiB + 1234)  # three parts with -c 2: worker processes fetch
SMALL = random.Random(52).randbytes(200_000)
SECRETS = ("hunter2", "SIGSECRET", "CREDSECRET", "LOCSECRET", "HOPSECRET")
UNTRUSTED = "unable to get local issuer certificate"


def refusal(url: str) -> str:
    """The one line a TLS refusal is told in."""
    return f"TLS certificate verification failed for {url}: {UNTRUSTED} (--insecure skips verification)"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[FaultServer]:
    """The fault server over HTTPS, with a certificate for 127.0.0.1 from a CA nobody trusts."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    server = FaultServer(tls=ctx).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ca_bundle(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def signed(base: str, path: str) -> str:
    """A URL as S3 presigns it, plus user:password: every part a screen or log must not show."""
    return (
        base.replace("://", "://alice:hunter2@", 1)
        + path
        + "?X-Amz-Credential=CREDSECRET&X-Amz-Signature=SIGSECRET"
    )


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "getm_tui", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "GETM_TUI_CONFIG": "", **(env or {})},
        timeout=60,
    )


# -- secrets ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_secrets_never_reach_output_logs_or_messages(fault_server, tls_server, tmp_path):
    """Jobs on signed URLs with user:password fail every way we know; then every byte that any command
    printed, every log line, every message stored in the queue and every file we wrote is searched."""
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    http, https = fault_server.base_url, tls_server.base_url
    fault_server.add("/missing-ok", b"")  # (unused: /missing.bin is simply not there)
    fault_server.add("/loop_a.bin", b"", redirect_to="/loop_b.bin")
    fault_server.add("/loop_b.bin", b"", redirect_to="/loop_a.bin")
    fault_server.add("/busy.bin", SMALL, statuses=[503] * 20, retry_after="0")
    fault_server.add("/bad.bin", DATA, content_md5=True, corrupt_offset=2 * MiB)
    fault_server.add("/stall.bin", SMALL, stall_after=1000)
    fault_server.add("/range.bin", DATA, wrong_content_range=3)
    fault_server.add("/hop.bin", b"", redirect_to="/gone.bin?X-Amz-Signature=HOPSECRET")
    fault_server.add("/ok.bin", SMALL)
    plain = fault_server.add("/plain.bin", SMALL)
    tls_server.add("/tls.bin", SMALL)
    # An https URL that redirects to plain http, with credentials of its own in the Location.
    down = plain.replace("://", "://bob:LOCSECRET@", 1) + "?Signature=LOCSECRET"
    tls_server.add("/down.bin", b"", redirect_to=down)
    urls = [
        signed(http, "/missing.bin"),  # 404
        signed(f"http://127.0.0.1:{closed_port()}", "/refused.bin"),  # connection refused
        signed(http, "/loop_a.bin"),  # redirect loop
        signed(http, "/busy.bin"),  # 503 until the retries run out
        signed(http, "/bad.bin"),  # checksum mismatch (Content-MD5)
        signed(http, "/stall.bin"),  # read timeouts until the retries run out
        signed(http, "/range.bin"),  # wrong Content-Range until the retries run out
        signed(http, "/hop.bin"),  # redirect to another signed URL, which is 404
        signed(https, "/tls.bin"),  # an untrusted certificate
        signed(http, "/ok.bin"),  # and one that works
    ]
    ids = add(data_dir, *urls, "-d", str(out_dir), "-c", "2")
    [down_id] = add(data_dir, signed(https, "/down.bin"), "-d", str(out_dir), "--insecure")
    env = {"GETM_TUI_RETRIES": "1", "GETM_TUI_READ_TIMEOUT": "1", "GETM_TUI_PART_SIZE": "1M"}
    outputs: dict[str, str] = {}

    def keep(label: str, res: subprocess.CompletedProcess[str]) -> None:
        outputs[label] = res.stdout + res.stderr

    first = cli(data_dir, "-vv", "run", "--once", env=env, timeout=100)
    keep("run", first)
    assert first.returncode == 1
    assert cli(data_dir, "retry", *map(str, [*ids, down_id])).returncode == 0
    second = cli(data_dir, "-vv", "run", "--once", "--json", env=env, timeout=100)
    keep("run --json", second)
    keep("ls", cli(data_dir, "ls"))
    keep("ls --json", cli(data_dir, "ls", "--json"))
    for job_id in [*ids, down_id]:
        keep(f"show {job_id}", cli(data_dir, "show", str(job_id)))
        keep(f"show --json {job_id}", cli(data_dir, "show", "--json", str(job_id)))
    (tmp_path / "get").mkdir()
    for n in (0, 2, 7, 8):
        keep(f"get of url {n}", get("-vv", "get", urls[n], "-o", str(tmp_path / "get"), "--retries", "0"))
    # Everything the queue keeps apart from the URL itself (which it needs, in a 0600 file).
    db = sqlite3.connect(os.path.join(data_dir, "queue.sqlite3"))
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM jobs")]
    assert all("SIGSECRET" in r["url"] and "hunter2" in r["url"] for r in rows if r["id"] != down_id)
    stored = [{k: v for k, v in r.items() if k != "url"} for r in rows]
    events = [tuple(r) for r in db.execute("SELECT * FROM events")]
    db.close()
    outputs["queue fields"] = json.dumps(stored, default=str)
    outputs["queue events"] = json.dumps(events)
    # Every file we wrote that is not downloaded data: the key, the lock, resume records.
    for directory in (data_dir, str(out_dir), str(tmp_path / "get")):
        for name in os.listdir(directory):
            if not name.startswith("queue.sqlite3") and not name.endswith((".bin", ".getm-part")):
                outputs[f"file {name}"] = Path(directory, name).read_bytes().decode("latin-1")
    assert any(name.endswith(".getm-part") for name in os.listdir(out_dir))  # a failed job kept one

    everything = "\n".join(f"== {k}\n{v}" for k, v in outputs.items())
    leaks = [(label, s, text[max(0, text.find(s) - 200) : text.find(s) + 50])
             for label, text in outputs.items() for s in SECRETS if s in text]  # fmt: skip
    assert leaks == []
    # And the failures did happen, each one told in a line of its own (with the URL shown redacted).
    states = {j["id"]: j for j in json.loads(outputs["ls --json"])}
    errors = [states[i]["error"] or "" for i in ids] + [states[down_id]["error"] or ""]
    for needle in (
        "HTTP 404",
        "connection refused",
        "too many redirects",
        "giving up after 1 retries: HTTP 503",
        "checksum mismatch",
        "giving up after 1 retries: timed out",
        "Content-Range",
        f"TLS certificate verification failed for https://***@127.0.0.1:{tls_server.port}/tls.bin?***",
        "refused redirect from https to http: http://***@127.0.0.1",
    ):
        assert any(needle in e for e in errors), (needle, errors)
    assert "/gone.bin?***" in everything  # the redirect's own signed URL, redacted too
    assert states[ids[-1]]["state"] == "done" and (out_dir / "ok.bin").read_bytes() == SMALL
    assert all("\n" not in e for e in errors)
    assert "Traceback" not in everything


# -- the data dir and the socket --------------------------------------------------------------------


def start_runner(data_dir: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "getm_tui", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(data_dir),
        start_new_session=True,
        **popen,
    )


def stop_runner(runner: subprocess.Popen[str]) -> tuple[str, str]:
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=15)
    assert runner.returncode == 0, err
    return out, err


@pytest.mark.slow
@pytest.mark.parametrize("existing", [False, True])
def test_data_dir_queue_and_socket_are_owner_only(tmp_path, existing):
    """Even with umask 0, and over a data dir someone made world-readable."""
    data_dir = str(tmp_path / "q")
    if existing:
        os.mkdir(data_dir)
        os.chmod(data_dir, 0o755)
    runner = start_runner(data_dir, umask=0)
    try:
        wait_for(lambda: os.path.exists(socket_path(data_dir)), 30)
        modes = {
            name: stat.S_IMODE(os.lstat(os.path.join(data_dir, name)).st_mode)
            for name in os.listdir(data_dir)
        }
        assert stat.S_ISSOCK(os.lstat(socket_path(data_dir)).st_mode)
    finally:
        stop_runner(runner)
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
    expected = {"queue.sqlite3", "supervisor.key", "supervisor.lock", "supervisor.sock"}
    assert expected <= set(modes), modes
    assert {name: mode for name, mode in modes.items() if mode != 0o600} == {}, modes


@pytest.mark.slow
def test_socket_refuses_a_wrong_authkey_and_a_silent_client_blocks_no_one(tmp_path):
    data_dir = str(tmp_path / "q")
    runner = start_runner(data_dir)
    try:
        path = socket_path(data_dir)
        wait_for(lambda: os.path.exists(path), 30)
        with pytest.raises(multiprocessing.AuthenticationError):
            multiprocessing.connection.Client(path, family="AF_UNIX", authkey=b"not the key" * 4)
        # No authkey at all: the client skips the handshake and sends a command straight away. It is
        # taken for a wrong answer to the challenge, refused, and the runner goes on.
        rogue = multiprocessing.connection.Client(path, family="AF_UNIX")
        rogue.send(P.Shutdown())
        with pytest.raises((EOFError, OSError)):
            while True:  # the challenge, then the refusal, then the end
                rogue.recv_bytes()
        rogue.close()
        # A client that connects and says nothing: the next one is served all the same.
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.connect(path)
        started = time.monotonic()
        conn = multiprocessing.connection.Client(path, family="AF_UNIX", authkey=authkey(data_dir))
        assert conn.poll(10)
        hello = conn.recv()
        assert isinstance(hello, P.Hello) and hello.verify_tls is True
        assert time.monotonic() - started < 4.0  # not after the silent client's 5 s
        conn.close()
        assert runner.poll() is None  # the rogue Shutdown did nothing
        # And the silent one is hung up on, rather than kept for ever.
        silent.settimeout(15)
        received = b""
        while chunk := silent.recv(4096):
            received += chunk
        assert b"#CHALLENGE#" in received
        silent.close()
    finally:
        _out, err = stop_runner(runner)
    assert err.count("refused a connection to the supervisor socket: wrong authkey") == 2, err


# -- TLS ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_get_refuses_an_untrusted_certificate_in_one_line_and_insecure_warns(tls_server, ca_bundle, tmp_path):
    url = tls_server.add("/data.bin", DATA)
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    refused = get("get", url, "-o", str(tmp_path), "-c", "2", "--part-size", "1M")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [f"getm-tui: {refusal(url)}"]
    assert os.listdir(tmp_path) == [] and tls_server.resource("/data.bin").get_count == 0
    warning = "TLS certificate verification is off for this download (--insecure)"
    for args in (["get", "--insecure"], ["--insecure", "get"]):
        ok = get(
            *args, url, "-o", str(tmp_path / "data.bin"), "-c", "2", "--part-size", "1M", "--overwrite", "-q"
        )
        assert ok.returncode == 0, ok.stderr
        assert ok.stderr.splitlines() == [f"getm-tui: WARNING: {warning}"]
        assert (tmp_path / "data.bin").read_bytes() == DATA
    # Verification itself works: with the CA trusted, the same download needs no --insecure.
    trusted = get("get", url, "-o", str(tmp_path / "data.bin"), "-c", "2", "--overwrite", "-q",
                  env={"REQUESTS_CA_BUNDLE": ca_bundle})  # fmt: skip
    assert trusted.returncode == 0 and trusted.stderr == "", trusted.stderr


@pytest.mark.slow
def test_run_refuses_then_run_insecure_fetches_with_a_warning(tls_server, tmp_path):
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    url = tls_server.add("/data.bin", DATA)
    [job_id] = add(data_dir, url, "-d", str(out_dir), "-c", "2")
    env = {"GETM_TUI_PART_SIZE": "1M"}
    refused = cli(data_dir, "run", "--once", env=env)
    assert refused.returncode == 1
    [job] = jobs(data_dir)
    assert job["state"] == "failed"
    assert (
        job["error"]
        == f"TLS certificate verification failed for {url}: {UNTRUSTED} (--insecure skips verification)"
    )
    assert f"job {job_id}: failed ({job['error']})" in refused.stdout.splitlines()
    assert os.listdir(out_dir) == []
    warning = "TLS certificate verification is off for every job (--insecure)"
    # Plain: the warning is the first line on stderr.
    assert cli(data_dir, "retry", str(job_id)).returncode == 0
    ok = cli(data_dir, "run", "--once", "--insecure", env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr.splitlines()[0] == f"getm-tui: warning: {warning}"
    assert (out_dir / "data.bin").read_bytes() == DATA
    # JSON, with the flag before the verb: the warning is the first record.
    url2 = tls_server.add("/two.bin", SMALL)
    add(data_dir, url2, "-d", str(out_dir))
    ok = cli(data_dir, "--insecure", "run", "--once", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    records = [json.loads(line) for line in ok.stdout.splitlines()]
    assert records[0] == {"time": records[0]["time"], "event": "log", "level": "warning", "message": warning}
    assert (out_dir / "two.bin").read_bytes() == SMALL


@pytest.mark.slow
def test_add_insecure_is_per_job(tls_server, tmp_path):
    """One runner, one worker pool: the job added with --insecure skips verification, the other does not."""
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    lax = tls_server.add("/lax.bin", DATA)
    strict = tls_server.add("/strict.bin", DATA)
    res = cli(data_dir, "add", lax, "-d", str(out_dir), "-c", "2", "--insecure")
    assert res.returncode == 0
    [lax_id] = map(int, res.stdout.split())
    assert (
        res.stderr
        == f"getm-tui: warning: TLS certificate verification will be off for job(s) {lax_id} (--insecure)\n"
    )
    [strict_id] = add(data_dir, strict, "-d", str(out_dir), "-c", "2")
    listed = {j["id"]: j for j in jobs(data_dir)}
    assert listed[lax_id]["insecure"] is True and listed[strict_id]["insecure"] is False
    run = cli(data_dir, "run", "--once", env={"GETM_TUI_PART_SIZE": "1M", "GETM_TUI_MAX_ACTIVE": "1"})
    assert run.returncode == 1
    assert (
        f"getm-tui: warning: job {lax_id}: TLS certificate verification is off for this job "
        "(added with --insecure)" in run.stderr.splitlines()
    )
    listed = {j["id"]: j for j in jobs(data_dir)}
    assert listed[lax_id]["state"] == "done" and (out_dir / "lax.bin").read_bytes() == DATA
    assert listed[strict_id]["state"] == "failed" and UNTRUSTED in listed[strict_id]["error"]
    assert not (out_dir / "strict.bin").exists()
    # The flag is kept with the job (the probe's facts are added beside it), so a retry keeps it too.
    shown = json.loads(cli(data_dir, "show", "--json", str(lax_id)).stdout)
    assert shown["info"]["insecure"] is True and shown["info"]["headers"]
    # The probe and four parts (the last one 1234 bytes): the parts went through the worker processes
    # of a pool made for verifying jobs.
    assert len([r for r in tls_server.resource("/lax.bin").requests if r.status == 206]) == 1 + 4


def test_a_wrong_place_for_insecure_is_one_line_exit_2(tmp_path):
    res = cli(str(tmp_path / "q"), "--insecure", "ls")
    assert res.returncode == 2
    assert res.stderr == "getm-tui: --insecure goes with the app, run, add or get, not ls\n"


@pytest.mark.slow
def test_https_to_http_redirect_refused_unless_allowed(tls_server, fault_server, ca_bundle, tmp_path):
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    plain = fault_server.add("/plain.bin", SMALL)
    url = tls_server.add("/secure.bin", b"", redirect_to=plain)
    [job_id] = add(data_dir, url, "-d", str(out_dir))
    env = {"REQUESTS_CA_BUNDLE": ca_bundle}  # the certificate is trusted: only the redirect is at issue
    res = cli(data_dir, "run", "--once", env=env)
    assert res.returncode == 1
    [job] = jobs(data_dir)
    assert job["error"] == (
        f"refused redirect from https to http: {plain} (allow_insecure_redirect = true follows it)"
    )
    assert fault_server.resource("/plain.bin").get_count == 0 and os.listdir(out_dir) == []
    assert cli(data_dir, "retry", str(job_id)).returncode == 0
    res = cli(data_dir, "run", "--once", env={**env, "GETM_TUI_ALLOW_INSECURE_REDIRECT": "true"})
    assert res.returncode == 0, res.stderr
    assert (out_dir / "plain.bin").read_bytes() == SMALL


@pytest.mark.slow
def test_max_redirects_from_the_config(fault_server, tmp_path):
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    fault_server.add("/real.bin", SMALL)
    for i in range(3):
        fault_server.add(f"/three{i}", b"", redirect_to=f"/three{i + 1}" if i < 2 else "/real.bin")
        if i < 2:
            fault_server.add(f"/two{i}", b"", redirect_to=f"/two{i + 1}" if i < 1 else "/real.bin")
    ok, too_many = add(data_dir, fault_server.url("/two0"), fault_server.url("/three0"), "-d", str(out_dir))
    res = cli(data_dir, "run", "--once", env={"GETM_TUI_MAX_REDIRECTS": "2"})
    assert res.returncode == 1
    listed = {j["id"]: j for j in jobs(data_dir)}
    assert listed[ok]["state"] == "done" and (out_dir / "real.bin").read_bytes() == SMALL
    assert listed[too_many]["error"] == f"too many redirects (more than 2) from {fault_server.url('/three0')}"
    assert fault_server.resource("/real.bin").get_count == 1


# -- the app --------------------------------------------------------------------------------------------


def test_app_insecure_flag_reaches_the_supervisor(monkeypatch, tmp_path):
    """`getm-tui --insecure` (no verb) gives the app settings with verification off."""
    import getm_tui.app.app
    from getm_tui.cli import main as cli_module

    seen: list[Settings] = []

    class FakeApp:
        def __init__(self, data_dir: str, settings: Settings) -> None:
            seen.append(settings)
            self.link = None

        def run(self) -> int:
            return 0

    monkeypatch.setattr(getm_tui.app.app, "GetmApp", FakeApp)
    monkeypatch.setenv("GETM_TUI_CONFIG", "")
    assert cli_module.main(["--data-dir", str(tmp_path / "q"), "--insecure"]) == 0
    assert cli_module.main(["--data-dir", str(tmp_path / "q")]) == 0
    assert [s.verify_tls for s in seen] == [False, True]


@pytest.mark.slow
def test_app_insecure_fetches_and_warns(tls_server, tmp_path):
    from getm_tui.app.app import TLS_OFF, GetmApp
    from getm_tui.queue.sqlite import Queue
    from tests.helpers.app_util import drive, notified, until

    out = tmp_path / "out"
    out.mkdir()
    data_dir = str(tmp_path / "q")
    url = tls_server.add("/app.bin", DATA)
    with Queue(data_dir) as q:
        [job_id] = q.add_many([{"url": url, "directory": str(out), "concurrency": 2}])
    settings = Settings(download_dir=str(out), part_size=MiB, concurrency=2, verify_tls=False)
    app = GetmApp(data_dir, settings)

    def state() -> str:
        with Queue(data_dir) as q:
            return q.get(job_id).state

    async def scenario(pilot: Any) -> None:
        await until(pilot, lambda: notified(app, TLS_OFF), "the warning")
        await until(pilot, lambda: state() == "done", "the job to finish", 60)
        await pilot.press("q")

    drive(app, scenario)
    assert (out / "app.bin").read_bytes() == DATA


@pytest.mark.slow
def test_app_insecure_attached_to_a_verifying_runner_says_it_has_no_effect(tmp_path):
    from getm_tui.app.app import GetmApp
    from tests.helpers.app_util import drive, notified, until

    data_dir = str(tmp_path / "q")
    runner = start_runner(data_dir)
    try:
        wait_for(lambda: os.path.exists(socket_path(data_dir)), 30)
        app = GetmApp(data_dir, Settings(download_dir=str(tmp_path), verify_tls=False))

        async def scenario(pilot: Any) -> None:
            assert app.mode == "attached"
            await until(pilot, lambda: notified(app, "--insecure has no effect"), "the notice")
            await pilot.press("q")

        drive(app, scenario)
    finally:
        stop_runner(runner)
