"""The benchmark's one way of running a command: it must return when the command does, and end the
command's whole process group when it overruns, since every figure in the README comes through it."""

from __future__ import annotations

import os
import time

import pytest

from benchmarks.benchlib.measure import alive, run_measured


@pytest.mark.slow
def test_an_overrunning_command_and_its_children_are_killed(tmp_path):
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait"
    started = time.monotonic()
    m = run_measured(["sh", "-c", script], tmp_path / "scratch", dict(os.environ), timeout=1.0)
    assert m.returncode == -9
    assert 1.0 <= m.wall < 30 and time.monotonic() - started < 30
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    deadline = time.monotonic() + 10
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in children)


def test_a_finished_command_is_measured(tmp_path):
    m = run_measured(["sh", "-c", "echo out; exit 3"], tmp_path / "scratch", dict(os.environ), timeout=60)
    assert m.returncode == 3 and m.stdout.strip().endswith("out")
    assert 0 < m.wall < 60 and m.user >= 0 and m.max_rss_kib > 0
