"""max_connections_per_host and Retry-After, counted at the server: one runner on its SQLite queue, and
a fleet of runners (each with a data dir of its own, standing in for hosts) on one PostgreSQL queue.

The fault server counts the requests it answers at once (peak_busy) and records when each was received
and answered, so what is asserted is what the server saw, not a timing of ours.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from getm_tui.queue.interface import open_queue
from tests.helpers.faultserver import FaultServer
from tests.helpers.kill_util import descendants, kill_group_and_wait
from tests.helpers.runner_util import cli, start, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

KiB = 1024
CAP = "3"
ENV = {
    "GETM_TUI_MAX_ACTIVE": "8",
    "GETM_TUI_RETRIES": "4",
    "GETM_TUI_LEASE_TIMEOUT": "3",
}


def _files(server: FaultServer, count: int, **options: object) -> dict[str, bytes]:
    """Small files (one request each), throttled so that many would be under way at once."""
    rng = random.Random(count)
    files = {}
    for i in range(count):
        data = rng.randbytes(96 * KiB + i)
        files[server.add(f"/polite/f{i}.bin", data, rate_limit=512 * KiB, **options)] = data
    return files


def _identical(out_dir, files: dict[str, bytes]) -> None:
    for url, data in files.items():
        with open(out_dir / url.rsplit("/", 1)[1], "rb") as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest(), url


def _add(data_dir: str, env: dict[str, str], out_dir, urls: list[str], *options: str) -> None:
    added = cli(data_dir, "add", "-d", str(out_dir), *options, *urls, env=env)
    assert added.returncode == 0, added.stderr


def _refusing(server: FaultServer, files: dict[str, bytes]) -> str:
    """A file whose first request is refused with 503 and Retry-After: 2."""
    url = server.add("/polite/refusing.bin", b"r" * 5000, statuses=[503], retry_after="2")
    files[url] = b"r" * 5000
    return url


def _fleet(
    tmp_path, queue: str, env: dict[str, str], out_dir, files: dict[str, bytes], runners: int, first: str = ""
) -> None:
    """Add the files (`first` before the others), run `runners` runners with --once to the end of the
    queue, and check the files."""
    env = {**ENV, **env, "GETM_TUI_QUEUE": queue}
    if first:
        _add(str(tmp_path / "adder"), env, out_dir, [first], "--priority", "9")
    _add(str(tmp_path / "adder"), env, out_dir, [u for u in files if u != first])
    procs = [start(str(tmp_path / f"host{i}"), "run", "--once", "--json", env=env) for i in range(runners)]
    outputs = [p.communicate(timeout=150) for p in procs]
    assert [p.returncode for p in procs] == [0] * runners, [o[1][-2000:] for o in outputs]
    _identical(out_dir, files)


def _sqlite(tmp_path, env: dict[str, str], out_dir, files: dict[str, bytes], first: str = "") -> None:
    data_dir = str(tmp_path / "data")
    if first:
        _add(data_dir, {**ENV, **env}, out_dir, [first], "--priority", "9")
    _add(data_dir, {**ENV, **env}, out_dir, [u for u in files if u != first])
    res = cli(data_dir, "run", "--once", "--json", env={**ENV, **env}, timeout=150)
    assert res.returncode == 0, res.stderr[-2000:]
    _identical(out_dir, files)


def test_one_runner_opens_at_most_the_cap_to_an_origin(fault_server: FaultServer, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    files = _files(fault_server, 24)
    _sqlite(tmp_path, {"GETM_TUI_MAX_CONNECTIONS_PER_HOST": CAP}, out_dir, files)
    assert fault_server.peak_busy <= 3


def test_a_fleet_opens_at_most_the_cap_to_an_origin(fault_server: FaultServer, postgres_url, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    files = _files(fault_server, 36)
    _fleet(tmp_path, postgres_url, {"GETM_TUI_MAX_CONNECTIONS_PER_HOST": CAP}, out_dir, files, 3)
    assert fault_server.peak_busy <= 3
    # Each runner counts alone what it was granted: all three ran jobs, so the cap held across them.
    with open_queue(postgres_url) as q:
        assert {j.state for j in q.jobs()} == {"done"}
        assert sum(1 for r in q.runners() if r.jobs_done) >= 2


def _quiet_after_the_refusal(
    server: FaultServer, refusing: str, files: dict[str, bytes], wait: float
) -> None:
    """No request reached the server from anyone while the origin asked them to wait, though other
    files were still to fetch: their requests came after it."""
    [refused] = [r for r in server.resource(refusing).requests if r.status == 503]
    during = [r for r in server.all_requests if refused.answered < r.received < refused.answered + wait]
    assert not during, [(r.received - refused.answered, r.status) for r in during]
    others = [r for url in files if url != refusing for r in server.resource(url).requests]
    assert any(r.received >= refused.answered + wait for r in others)


# Two jobs at a time per runner and the refused file first: more files wait while the origin is held.
HOLD_ENV = {"GETM_TUI_MAX_CONNECTIONS_PER_HOST": "1", "GETM_TUI_MAX_ACTIVE": "2"}


def test_a_retry_after_holds_every_job_of_a_runner_back(fault_server: FaultServer, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    files = _files(fault_server, 16)
    refusing = _refusing(fault_server, files)
    _sqlite(tmp_path, HOLD_ENV, out_dir, files, first=refusing)
    _quiet_after_the_refusal(fault_server, refusing, files, 2.0)


def test_a_retry_after_holds_the_whole_fleet_back(fault_server: FaultServer, postgres_url, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    files = _files(fault_server, 24)
    refusing = _refusing(fault_server, files)
    _fleet(tmp_path, postgres_url, HOLD_ENV, out_dir, files, 3, first=refusing)
    _quiet_after_the_refusal(fault_server, refusing, files, 2.0)


def test_a_killed_runner_gives_its_slots_back_with_its_lease(
    fault_server: FaultServer, postgres_url, tmp_path
):
    """A runner SIGKILLed while it holds the origin's only slot: another runner gets it once the dead
    one's heartbeat is older than its lease, and finishes the queue."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    files = _files(fault_server, 4)
    env = {**ENV, "GETM_TUI_QUEUE": postgres_url, "GETM_TUI_MAX_CONNECTIONS_PER_HOST": "1"}
    _add(str(tmp_path / "adder"), env, out_dir, list(files))
    first = start(str(tmp_path / "host-a"), "run", "--json", env=env)
    seen: set[int] = set()
    try:
        wait_for(lambda: _slots_held(postgres_url), 60)
        seen = {p.pid for p in descendants(first.pid)}
    finally:
        kill_group_and_wait(first.pid, seen)  # SIGKILL, every process: nobody gives the slot back
        first.wait(10)
    assert _slots_held(postgres_url)
    second = cli(str(tmp_path / "host-b"), "run", "--once", "--json", env=env, timeout=150)
    assert second.returncode == 0, second.stderr[-2000:]
    _identical(out_dir, files)


def _slots_held(queue: str) -> int:
    import psycopg

    with psycopg.connect(queue) as conn:
        row = conn.execute("SELECT count(*) FROM getm_origin_slots").fetchone()
    return int(row[0]) if row else 0
