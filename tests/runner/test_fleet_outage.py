"""A fleet's database goes away while a runner downloads, and comes back.

What must hold: the runner keeps downloading what it holds (the fault server goes on sending), a job
whose download completes meanwhile is recorded done once the database is back, `run --once` waits for
the database instead of ending, and nothing recorded is lost: every file is byte-identical and no byte of
any file is fetched twice. Real processes, the session's PostgreSQL (stopped and started again), the
fault server on loopback.
"""

from __future__ import annotations

import json
import random

import pytest

from getm_tui.queue.interface import open_queue
from tests.helpers.faultserver import FaultServer
from tests.helpers.kill_util import gets, is_probe, self_overlap, served
from tests.helpers.postgres import PostgresServer
from tests.helpers.runner_util import wait_for
from tests.runner.test_fleet import _add, _done_events, _file_sha, _runner, _sha

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MiB = 1024 * 1024


def _sent(fault_server: FaultServer, urls: list[str]) -> int:
    return sum(r.body_bytes for url in urls for r in gets(fault_server.resource(url)))


def test_the_database_stopped_and_started_mid_run(
    fault_server: FaultServer, postgres_server: PostgresServer, postgres_url, tmp_path
):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rng = random.Random(71)
    files = {
        fault_server.add(f"/outage/f{i}.bin", rng.randbytes(3 * MiB + i), rate_limit=384 * 1024): i
        for i in range(3)
    }
    urls = list(files)
    data = {url: fault_server.resource(url).data for url in urls}
    ids = _add(tmp_path, postgres_url, out_dir, *urls)
    runner = _runner(tmp_path, "host-a", postgres_url, "--once")  # two jobs at a time: one waits

    def recorded() -> dict[int, int]:
        with open_queue(postgres_url) as q:
            return {j.id: j.bytes_done for j in q.jobs() if j.state == "active"}

    try:
        wait_for(lambda: sum(v >= 256 * 1024 for v in recorded().values()) == 2 or runner.poll() is not None)
        assert runner.poll() is None
        running = [url for url, job in zip(urls, ids, strict=True) if job in recorded()]
        postgres_server.stop()
        try:
            sent = _sent(fault_server, urls)
            wait_for(lambda: _sent(fault_server, urls) >= sent + 512 * 1024, 60)  # it goes on downloading
            fast = fault_server.resource(running[0])
            fast.configure(rate_limit=None)  # this one completes while the database is away
            wait_for(lambda: _sent(fault_server, [running[0]]) >= len(fast.data), 60)
            assert runner.poll() is None  # `run --once` waits for the database
        finally:
            postgres_server.start()
        for url in urls:
            fault_server.resource(url).configure(rate_limit=None)
        out, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate(timeout=30)
    assert runner.returncode == 0, out[-3000:] + err[-3000:]
    logs = [e["message"] for e in map(json.loads, out.splitlines()) if e["event"] == "log"]
    assert any("lost the queue database" in m and "connecting again" in m for m in logs), logs
    assert any(m.startswith("the queue database is back") for m in logs), logs
    for url in urls:
        assert _file_sha(str(out_dir / url.rsplit("/", 1)[1])) == _sha(data[url]), url
        parts = [served(r) for r in gets(fault_server.resource(url)) if not is_probe(r)]
        assert self_overlap(parts) == [], (url, parts)  # nothing recorded was fetched again
    with open_queue(postgres_url) as q:
        assert {j.state for j in q.jobs()} == {"done"}
    for job_id in ids:
        assert len(_done_events(postgres_url, job_id)) == 1, job_id
