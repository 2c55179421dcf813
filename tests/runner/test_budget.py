"""runner/budget.py: the queue's connections, shared among its running jobs."""

from __future__ import annotations

import os

import pytest

from getm_tui.runner.budget import big_shares, first_share, kind_of
from tests.helpers.faultserver import FaultServer
from tests.helpers.kill_util import gets, is_probe
from tests.helpers.runner_util import add, cli, jobs

MiB = 1024 * 1024


def test_a_probe_says_whether_a_job_can_use_several_connections() -> None:
    assert kind_of(100, True, 1000) == "small"
    assert kind_of(5000, False, 1000) == "small"  # no ranges: one stream
    assert kind_of(None, False, 1000) == "small"
    assert kind_of(5000, True, 1000) == "big"
    assert kind_of(None, True, 1000) == "big"


def test_big_jobs_share_what_the_others_leave() -> None:
    wanted = {1: 4, 2: 4, 3: 4, 4: 4, 5: 4}
    kinds = {1: "big", 2: "big", 3: "small", 4: "unknown", 5: "big"}
    # 16 - 2 (one each for the small and the unknown job) = 14 over three big jobs, each at most 4.
    assert big_shares(wanted, kinds, 16) == {1: 4, 2: 4, 5: 4}
    # 8 - 2 = 6 over three: 2 each.
    assert big_shares(wanted, kinds, 8) == {1: 2, 2: 2, 5: 2}


def test_a_job_asking_for_little_leaves_the_rest_to_the_others() -> None:
    assert big_shares({1: 1, 2: 8, 3: 8}, dict.fromkeys((1, 2, 3), "big"), 10) == {1: 1, 2: 4, 3: 5}


def test_every_big_job_gets_at_least_one_connection() -> None:
    shares = big_shares(dict.fromkeys(range(20), 4), dict.fromkeys(range(20), "big"), 16)
    assert set(shares.values()) == {1}


def test_a_job_starting_takes_what_is_left() -> None:
    assert first_share(4, 0, 16) == 4
    assert first_share(4, 14, 16) == 2
    assert first_share(4, 16, 16) == 1
    assert first_share(4, 30, 16) == 1


@pytest.mark.slow
def test_max_connections_bounds_the_connections_of_a_queue_of_big_files(
    fault_server: FaultServer, tmp_path
) -> None:
    """With one connection for the queue, each big file is fetched in one request (one stream), however
    many connections it would take alone."""
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    files = {fault_server.add(f"/big-{i}.bin", os.urandom(4 * MiB + i)): i for i in range(3)}
    add(data_dir, *files, "-d", str(out_dir), "-c", "4")
    env = {"GETM_TUI_MAX_CONNECTIONS": "1", "GETM_TUI_PART_SIZE": "1M"}
    out = cli(data_dir, "run", "--once", env=env, timeout=90)
    assert out.returncode == 0, out.stderr
    assert [j["state"] for j in jobs(data_dir)] == ["done"] * 3
    for url in files:
        fetched = [r for r in gets(fault_server.resource(url)) if not is_probe(r)]
        assert len(fetched) <= 1, [r.range for r in fetched]
    for url, i in files.items():
        assert (out_dir / f"big-{i}.bin").read_bytes() == fault_server.resource(url).data
