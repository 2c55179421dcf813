"""A supervisor whose front end died stops by itself, and starts nothing more as it does: the jobs it ran
go back to the queue, the jobs still queued are left as they were."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from tests.helpers.runner_util import add, env_for, jobs, start, wait_for

MiB = 1024 * 1024


@pytest.mark.slow
def test_a_supervisor_whose_front_end_died_stops_and_claims_nothing_more(fault_server, tmp_path):
    """`run` forks its supervisor, which held a copy of the front end's end of their pipe and so never saw
    it close: killed, the front end left a supervisor running the queue for nobody. And stopping without
    being told to (its stop flag is not set), only the shutdown itself keeps the supervisor from claiming
    queued jobs for the slots its cancelled jobs free as they end."""
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    slow = [fault_server.add(f"/slow{i}.bin", os.urandom(8 * MiB), rate_limit=1 * MiB) for i in range(3)]
    small = [fault_server.add(f"/small{i}.bin", os.urandom(1000)) for i in range(20)]
    running_ids = add(data_dir, *slow, "-d", str(out_dir), "-c", "1")
    queued_ids = add(data_dir, *small, "-d", str(out_dir))
    runner = start(data_dir, "run", env=env_for(data_dir, GETM_TUI_MAX_ACTIVE="3"))
    socket = os.path.join(data_dir, "supervisor.sock")
    try:
        wait_for(lambda: all(j["state"] == "active" for j in jobs(data_dir) if j["id"] in running_ids))
        assert all(j["state"] == "queued" for j in jobs(data_dir) if j["id"] in queued_ids)
        wait_for(lambda: os.path.exists(socket))
        runner.send_signal(signal.SIGKILL)  # the front end only: its supervisor finds it gone
        runner.wait(timeout=10)
        wait_for(lambda: not os.path.exists(socket), 20)  # the supervisor has shut down
    finally:
        if os.path.exists(socket):  # the test failed before the supervisor stopped: stop what is left
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
    state = {j["id"]: j for j in jobs(data_dir)}
    assert [state[i]["state"] for i in running_ids] == ["queued"] * 3  # cancelled, back in the queue
    assert [state[i]["state"] for i in queued_ids] == ["queued"] * len(queued_ids)
    assert not any((out_dir / f"small{i}.bin").exists() for i in range(len(small)))
