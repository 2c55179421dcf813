"""The queue verbs as a user runs them: real processes on a queue in a temporary data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from getm_tui.queue import lock
from getm_tui.queue.sqlite import DB_NAME, Queue

SHA256 = "ab" * 32


@pytest.fixture
def env(tmp_path):
    """Paths for one test: the queue's data dir and an existing download dir."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    return {"data": str(tmp_path / "data"), "dl": str(downloads), "tmp": tmp_path}


def run(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "GETM_TUI_CONFIG": "",
        "GETM_TUI_DOWNLOAD_DIR": env["dl"],
        "GETM_TUI_DATA_DIR": env["data"],
    }
    out = subprocess.run(
        [sys.executable, "-m", "getm_tui", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=full_env,
        timeout=60,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("getm-tui")
    return lines[0]


def jobs(env: dict) -> list:
    with Queue(env["data"]) as q:
        return q.jobs()


def add(env: dict, *urls: str) -> list[int]:
    out = run(env, "add", *urls)
    assert out.returncode == 0, out.stderr
    return [int(line) for line in out.stdout.split()]


# -- add ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_add_prints_the_new_ids_and_stores_the_options(env):
    out = run(
        env, "add", "https://example.org/a.bin", "-d", env["dl"], "-o", "renamed.bin", "-c", "3",
        "--checksum", "SHA256:" + SHA256.upper(), "--priority", "7",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "1\n" and out.stderr == ""
    (job,) = jobs(env)
    assert (job.url, job.directory, job.name, job.concurrency, job.priority, job.state) == (
        "https://example.org/a.bin", env["dl"], "renamed.bin", 3, 7, "queued",
    )  # fmt: skip
    assert job.checksums == ["sha256:" + SHA256]
    assert add(env, "https://example.org/b", "http://example.org/c", "file:///tmp/d") == [2, 3, 4]


@pytest.mark.slow
def test_add_defaults_to_the_download_dir_and_stores_it_absolute(env):
    add(env, "https://example.org/a")
    assert jobs(env)[0].directory == env["dl"]
    out = subprocess.run(
        [sys.executable, "-m", "getm_tui", "add", "https://example.org/b", "-d", "downloads"],
        capture_output=True, text=True, cwd=env["tmp"],
        env={**os.environ, "GETM_TUI_CONFIG": "", "GETM_TUI_DATA_DIR": env["data"]},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert jobs(env)[1].directory == env["dl"]


def test_one_bad_url_queues_nothing(env):
    out = run(env, "add", "https://example.org/a", "gopher://example.org/b", "https://example.org/c")
    assert out.returncode == 2 and out.stdout == ""
    assert "gopher://example.org/b" in one_line(out)
    assert jobs(env) == []


@pytest.mark.parametrize("bad", ["md5:abc", "sha256:" + "zz" * 32, "nope:" + SHA256, "sha256"])
def test_bad_checksum_queues_nothing(env, bad):
    out = run(env, "add", "https://example.org/a", "--checksum", bad)
    assert out.returncode == 2
    one_line(out)
    assert jobs(env) == []


def test_input_file_with_comments_blank_lines_and_checksums(env):
    listing = env["tmp"] / "urls.txt"
    listing.write_text(
        "# a list\n\nhttps://example.org/1\n   \n  https://example.org/2  # the second\n"
        f"https://example.org/3 sha256:{SHA256}\n#https://example.org/not\n"
    )
    ids = add(env, "https://example.org/0", "-i", str(listing))
    assert len(ids) == 4
    got = jobs(env)
    assert [j.url for j in got] == [f"https://example.org/{i}" for i in range(4)]
    assert got[3].checksums == ["sha256:" + SHA256] and got[2].checksums == []


def test_checksum_option_goes_with_a_single_url_from_a_file(env):
    listing = env["tmp"] / "one.txt"
    listing.write_text("https://example.org/only\n")
    add(env, "-i", str(listing), "--checksum", "sha256:" + SHA256)
    assert jobs(env)[0].checksums == ["sha256:" + SHA256]


@pytest.mark.slow
def test_input_file_error_names_the_line(env):
    listing = env["tmp"] / "urls.txt"
    listing.write_text("https://example.org/1\n# fine\nhttps://example.org/2 md5:xyz\n")
    out = run(env, "add", "-i", str(listing))
    assert out.returncode == 2
    assert f"(line 3 of {listing})" in one_line(out)
    listing.write_text("https://example.org/1\n\nexample.org/2\n")
    assert "line 3" in one_line(run(env, "add", "-i", str(listing)))
    listing.write_text("https://example.org/a b?X-Amz-Signature=secret\n")
    line = one_line(run(env, "add", "-i", str(listing)))
    assert "unexpected text after the URL" in line and "line 1" in line and "secret" not in line
    assert jobs(env) == []


@pytest.mark.slow
def test_input_from_stdin(env):
    out = run(env, "add", "-i", "-", stdin="https://example.org/1\n\n# c\nhttps://example.org/2\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "2"]
    out = run(env, "add", "-i", "-", stdin="https://example.org/3\nmailto:x@y\n")
    assert out.returncode == 2 and "line 2 of stdin" in one_line(out)
    assert len(jobs(env)) == 2


@pytest.mark.parametrize(
    "args, words",
    [
        (["https://example.org/1", "https://example.org/2", "-o", "x.bin"], "exactly one URL"),
        (["https://example.org/1", "-o", "../x.bin"], "file name"),
        (["https://example.org/1", "https://example.org/2", "--checksum", "md5:" + "0" * 32], "exactly one"),
        (["https://example.org/1", "-d", "/nonexistent/dir"], "directory does not exist: /nonexistent/dir"),
        (["https://example.org/1", "-c", "0"], "at least 1"),
        (["https://example.org/1", "--priority", "high"], "priority"),
        (["-i", "/nonexistent/urls.txt"], "cannot read /nonexistent/urls.txt"),
        ([], "no URLs"),
    ],
)
def test_add_usage_errors(env, args, words):
    out = run(env, "add", *args)
    assert out.returncode == 2
    assert words in one_line(out)
    assert out.stdout == ""
    assert not os.path.exists(os.path.join(env["data"], DB_NAME)) or jobs(env) == []


@pytest.mark.slow
def test_data_dir_option_before_or_after_the_verb(env):
    other = str(env["tmp"] / "other")
    assert run(env, "--data-dir", other, "add", "https://example.org/1").stdout == "1\n"
    assert run(env, "add", "https://example.org/2", "--data-dir", other).stdout == "2\n"
    assert jobs(env) == []
    with Queue(other) as q:
        assert len(q.jobs()) == 2


# -- ls and show --------------------------------------------------------------------------------------

SECRET_URL = "https://user:pw@example.org/bucket/signed.bin?X-Amz-Signature=secret&X-Amz-Credential=cred"


@pytest.mark.slow
def test_ls_table_and_json_redact_secrets(env):
    a, b = add(env, SECRET_URL, "https://example.org/plain.bin")
    with Queue(env["data"]) as q:
        q.update(a, size=2048, bytes_done=1024, state="active", path=os.path.join(env["dl"], "signed.bin"))
        q.update(b, state="failed", error="HTTP 404 from example.org\nsecond line", verdict="unverified")
    table = run(env, "ls")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "PRI", "NAME", "SIZE", "DONE", "VERDICT", "ERROR"]
    assert lines[1].split()[:7] == ["1", "active", "0", "signed.bin", "2.0", "KiB", "50%"]
    assert "HTTP 404 from example.org" in lines[2] and "second line" not in table.stdout
    listing = run(env, "ls", "--json")
    assert listing.returncode == 0
    data = json.loads(listing.stdout)
    for key in ("id", "name", "path", "state", "size", "bytes_done", "verdict", "error"):
        assert key in data[0]
    first = data[0]
    assert (first["id"], first["state"], first["size"], first["bytes_done"]) == (a, "active", 2048, 1024)
    assert data[0]["path"] == os.path.join(env["dl"], "signed.bin")
    assert (data[1]["state"], data[1]["verdict"]) == ("failed", "unverified")
    assert data[0]["url"] == "https://***@example.org/bucket/signed.bin?***"
    shown = run(env, "show", str(a))
    for out in (table, listing, shown):
        assert "secret" not in out.stdout and "pw" not in out.stdout and "cred" not in out.stdout
    assert json.loads(run(env, "ls", "--json", "--state", "failed").stdout)[0]["id"] == b


@pytest.mark.slow
def test_ls_json_lines_are_the_json_listing_one_job_a_line(env):
    a, b = add(env, SECRET_URL, "https://example.org/plain.bin")
    with Queue(env["data"]) as q:
        q.update(b, state="failed", error="HTTP 404", verdict="unverified")
    lines = run(env, "ls", "--jsonl")
    assert lines.returncode == 0, lines.stderr
    rows = [json.loads(line) for line in lines.stdout.splitlines()]
    assert rows == json.loads(run(env, "ls", "--json").stdout)
    assert [r["id"] for r in rows] == [a, b] and "secret" not in lines.stdout
    only = run(env, "ls", "--jsonl", "--state", "failed").stdout.splitlines()
    assert [json.loads(line)["id"] for line in only] == [b]
    assert run(env, "ls", "--jsonl", "--state", "done").stdout == ""
    both = run(env, "ls", "--json", "--jsonl")
    assert both.returncode == 2 and "not allowed with" in one_line(both)


@pytest.mark.slow
def test_add_input_checks_every_url_whatever_its_host(env):
    """Hosts are checked once each; a URL that only its host makes bad is still refused, by its line."""
    listing = env["tmp"] / "urls.txt"
    good = [
        "https://a.example/1",
        "https://a.example/2?X-Amz-Signature=s",
        "https://a.example:8443/3",
        "HTTP://B.example/4",
        "http://[::1]:8080/5",
        "file:///tmp/6",
        "https://user:pw@a.example/7#part",
        "https://a.example?x=/8",
    ]
    listing.write_text("\n".join(good) + "\n")
    assert len(add(env, "-i", str(listing))) == len(good)
    assert [j.url for j in jobs(env)] == good
    for bad in ("https://a.example:99999/9", "https://a.example:x/10", "gopher://a.example/11", "http:///12"):
        listing.write_text(f"https://a.example/ok\n{bad}\n")
        out = run(env, "add", "-i", str(listing))
        assert out.returncode == 2 and "(line 2 of" in one_line(out), (bad, out.stderr)
    assert len(jobs(env)) == len(good)


@pytest.mark.slow
def test_ls_of_an_empty_queue(env):
    assert run(env, "ls").stdout.split() == ["ID", "STATE", "PRI", "NAME", "SIZE", "DONE", "VERDICT", "ERROR"]
    assert json.loads(run(env, "ls", "--json").stdout) == []


@pytest.mark.slow
def test_show_fields_integrity_and_events(env):
    (jid,) = add(env, "https://example.org/f.bin", "--checksum", "sha256:" + SHA256)
    with Queue(env["data"]) as q:
        q.update(
            jid,
            integrity=[{"algorithm": "sha256", "source": "user", "expected": SHA256, "computed": SHA256}],
            verdict="verified",
        )
        q.log_event(jid, "started", "connecting to example.org")
    assert run(env, "pause", str(jid)).returncode == 0
    out = run(env, "show", str(jid))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for words in (
        "id:",
        "state:       paused",
        "url:         https://example.org/f.bin",
        "verdict:     verified",
        f"checksums:   sha256:{SHA256}",
        "algorithm: sha256",
        "source: user",
        f"computed: {SHA256}",
        "started: connecting to example.org",
        "command: pause: queued -> paused",
    ):
        assert words in text, words
    data = json.loads(run(env, "show", str(jid), "--json").stdout)
    assert data["integrity"][0]["algorithm"] == "sha256"
    assert [e["kind"] for e in data["events"]] == ["started", "command"]


# -- pause, resume, retry -----------------------------------------------------------------------------


def states(env: dict) -> list[str]:
    return [j.state for j in jobs(env)]


@pytest.mark.slow
def test_pause_resume_retry(env):
    a, b, c = add(env, "https://example.org/1", "https://example.org/2", "https://example.org/3")
    with Queue(env["data"]) as q:
        q.transition(c, "active", ["queued"])
        q.transition(c, "failed", ["active"], error="boom", verdict="mismatch")
    assert run(env, "pause", str(a), str(b)).returncode == 0
    assert states(env) == ["paused", "paused", "failed"]
    out = run(env, "pause", str(a), str(c))
    assert out.returncode == 0
    assert out.stderr.splitlines() == [
        "getm-tui: job 1 is already paused",
        "getm-tui: job 3 is failed; not paused",
    ]
    assert run(env, "resume", str(a)).returncode == 0
    assert states(env) == ["queued", "paused", "failed"]
    assert run(env, "retry", str(c)).returncode == 0
    job = jobs(env)[2]
    assert (job.state, job.error, job.verdict) == ("queued", None, None)
    out = run(env, "retry", str(a))
    assert out.returncode == 0 and "job 1 is already queued" in one_line(out)
    with Queue(env["data"]) as q:
        q.update(b, state="done")
    out = run(env, "retry", str(b))
    assert out.returncode == 0 and "job 2 is done; not retried" in one_line(out)


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["pause", "resume", "retry", "rm", "show"])
def test_unknown_id_changes_nothing(env, verb):
    a, b = add(env, "https://example.org/1", "https://example.org/2")
    with Queue(env["data"]) as q:
        q.transition(b, "paused", ["queued"])
        before = [(j.id, j.state, j.updated) for j in q.jobs()]
    ids = [str(a)] if verb == "show" else [str(a), str(b)]
    out = run(env, verb, *ids[:-1], "99")
    assert out.returncode == 2 and "no job with id 99" in one_line(out)
    assert [(j.id, j.state, j.updated) for j in jobs(env)] == before


def test_bad_id_is_a_usage_error(env):
    out = run(env, "pause", "one")
    assert out.returncode == 2 and "not a job id" in one_line(out)


# -- rm -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_rm_deletes_rows_and_partial_files(env):
    a, b, c = add(env, "https://example.org/1", "https://example.org/2", "https://example.org/3")
    dl = env["dl"]
    for name in ("one.bin", "two.bin", "three.bin", "one.bin.getm-part"):
        with open(os.path.join(dl, name), "w") as f:
            f.write("data")
    with Queue(env["data"]) as q:
        q.update(a, path=os.path.join(dl, "one.bin"))
        q.update(b, path=os.path.join(dl, "two.bin"), state="done")
        q.update(c, path=os.path.join(dl, "three.bin"), state="done")
    out = run(env, "rm", str(a), str(b))
    assert out.returncode == 0 and out.stdout == out.stderr == ""
    assert [j.id for j in jobs(env)] == [c]
    assert sorted(os.listdir(dl)) == ["one.bin", "three.bin", "two.bin"]  # finished files stay
    assert run(env, "rm", str(c), "--delete-file").returncode == 0
    assert jobs(env) == [] and sorted(os.listdir(dl)) == ["one.bin", "two.bin"]


@pytest.mark.slow
def test_rm_of_an_active_job_under_a_supervisor_cancels_it(env):
    a, b = add(env, "https://example.org/1", "https://example.org/2")
    with Queue(env["data"]) as q:
        q.transition(a, "active", ["queued"])
        q.transition(b, "active", ["queued"])
    supervisor = lock.SupervisorLock(env["data"])
    supervisor.acquire()
    try:
        assert run(env, "rm", str(a), "--delete-file").returncode == 0
    finally:
        supervisor.release()
    job = jobs(env)[0]
    assert (job.id, job.state, job.info) == (a, "canceled", {"delete_file": True})
    assert run(env, "rm", str(b)).returncode == 0  # no supervisor: the row goes at once
    assert [j.id for j in jobs(env)] == [a]


# -- a broken queue -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, code, stdout",
    [
        (["ls", "--json"], 0, "[]\n"),
        (["add", "https://example.org/1"], 0, "1\n"),
        (["pause", "1"], 2, ""),
        (["show", "1"], 2, ""),
    ],
)
@pytest.mark.slow
def test_unreadable_queue_is_backed_up_with_one_line_and_the_command_goes_on(env, args, code, stdout):
    """Nothing in it can be read: it is kept aside as it was, and the verb runs on a new, empty queue."""
    os.makedirs(env["data"])
    garbage = os.urandom(64) * 256
    with open(os.path.join(env["data"], DB_NAME), "wb") as f:
        f.write(garbage)
    out = run(env, *args)
    assert (out.returncode, out.stdout) == (code, stdout), out.stderr
    lines = out.stderr.strip().splitlines()
    assert "was damaged (file is not a database) and no job in it could be read" in lines[0]
    assert lines[1:] == ([] if code == 0 else ["getm-tui: no job with id 1"])
    [backup] = [n for n in os.listdir(env["data"]) if ".corrupt-" in n]
    assert backup in lines[0]
    with open(os.path.join(env["data"], backup), "rb") as f:
        assert f.read() == garbage  # never "repaired" away
    assert run(env, "ls").stderr == ""  # recovered once


@pytest.mark.parametrize("args", [["ls"], ["add", "https://example.org/1"], ["show", "1"], ["retry", "1"]])
def test_a_broken_config_file_is_one_line_for_every_verb(env, args):
    config = env["tmp"] / "config.toml"
    config.write_text("queue_timeout = [\n")
    out = subprocess.run(
        [sys.executable, "-m", "getm_tui", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "GETM_TUI_CONFIG": str(config), "GETM_TUI_DATA_DIR": env["data"]},
        timeout=60,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert "Traceback" not in out.stderr
    assert one_line(out).startswith(f"getm-tui: {config}: not valid TOML")


def test_a_data_dir_that_cannot_be_made_is_one_line(env):
    blocker = env["tmp"] / "file"
    blocker.write_text("x")
    out = run(env, "--data-dir", str(blocker / "data"), "ls")
    assert out.returncode == 2
    assert one_line(out).startswith(f"getm-tui: cannot create the data directory {blocker / 'data'}")
