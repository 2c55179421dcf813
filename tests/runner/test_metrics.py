"""`getm-tui run --metrics`: the Prometheus endpoint scraped over real HTTP while a runner works."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.archives import data_of
from tests.helpers.runner_util import add, cli, start, wait_for

MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    """Every sample as {(name, labels): value}, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.slow
def test_metrics_while_a_runner_works(fault_server, tmp_path):
    data_dir, out = str(tmp_path / "q"), tmp_path / "out"
    out.mkdir()
    host = f"127.0.0.1:{fault_server.port}"
    slow = fault_server.add("/slow.bin", os.urandom(8 * MiB), rate_limit=256 * 1024)
    ok = fault_server.add("/ok.bin", os.urandom(2 * MiB))
    gz = fault_server.add("/ok.tar.gz", data_of("tar.gz", "good"))
    bad_gz = fault_server.add("/bad.gz", data_of("gz", "truncated"))
    wrong = fault_server.add("/wrong.bin", b"w" * 5000)
    missing = fault_server.url("/missing.bin")
    (slow_id,) = add(data_dir, slow, "-d", str(out), "-c", "2")
    add(data_dir, ok, gz, bad_gz, missing, "-d", str(out), "--priority", "1")
    add(data_dir, wrong, "-d", str(out), "--checksum", "md5:" + hashlib.md5(b"other").hexdigest())
    port = free_port()
    env = {"GETM_TUI_MAX_ACTIVE": "2", "GETM_TUI_PART_SIZE": "1M"}
    runner = start(data_dir, "run", "--metrics", f"127.0.0.1:{port}", env=env)
    try:

        def settled():
            m = scrape(port)
            if m is None or m.get(("getm_jobs_finished_total", (("result", "failed"),))) != 3:
                return None
            if m.get(("getm_jobs_running", ())) != 1 or not m.get(
                ("getm_host_connections", (("host", host),))
            ):
                return None
            return m

        m = wait_for(settled, timeout=60, interval=0.2)  # the quick jobs ended, the slow one runs
        assert m[("getm_jobs_finished_total", (("result", "done"),))] == 2
        assert m[("getm_job_failures_total", (("reason", "http_404"),))] == 1
        assert m[("getm_job_failures_total", (("reason", "archive"),))] == 1
        assert m[("getm_job_failures_total", (("reason", "checksum"),))] == 1
        assert m[("getm_verifications_total", (("outcome", "unverified"),))] == 1
        assert m[("getm_verifications_total", (("outcome", "archive_intact"),))] == 1
        assert m[("getm_verifications_total", (("outcome", "archive_damaged"),))] == 1
        assert m[("getm_verifications_total", (("outcome", "mismatch"),))] == 1
        assert m[("getm_jobs", (("state", "active"),))] == 1
        assert m[("getm_jobs", (("state", "failed"),))] == 3
        assert m[("getm_queue_depth", ())] == 0
        fetched = m[("getm_downloaded_bytes_total", (("host", host),))]
        assert fetched >= 2 * MiB + len(data_of("tar.gz", "good"))
        assert m[("getm_retries_total", ())] == 0

        # Still working: what it has fetched grows from one scrape to the next.
        wait_for(
            lambda: (scrape(port) or {}).get(("getm_downloaded_bytes_total", (("host", host),)), 0) > fetched
        )
        later = scrape(port)
        assert later is not None and later[("getm_host_throughput_bytes_per_second", (("host", host),))] > 0
        assert cli(data_dir, "show", str(slow_id)).returncode == 0
    finally:
        runner.send_signal(signal.SIGINT)
        _out, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, err
    assert scrape(port) is None  # the endpoint closed with the runner


@pytest.mark.slow
def test_a_metrics_address_that_cannot_be_served_is_one_line(tmp_path):
    data_dir = str(tmp_path / "q")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = cli(data_dir, "run", "--once", "--metrics", f"127.0.0.1:{port}")
    assert (res.returncode, res.stderr) == (
        2,
        f"getm-tui: cannot serve metrics on 127.0.0.1:{port}: Address already in use\n",
    )
    res = cli(data_dir, "run", "--once", "--metrics", "nowhere")
    assert res.returncode == 2
    assert res.stderr == "getm-tui: metrics: expected HOST:PORT (e.g. 127.0.0.1:9464), got 'nowhere'\n"
