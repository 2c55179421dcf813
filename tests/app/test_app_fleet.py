"""The app pointed at a fleet's queue (PostgreSQL): it starts no supervisor and opens no socket, shows the
runners in a panel of their own, and steers jobs through the database."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from textual.pilot import Pilot

from getm_tui.app.app import GetmApp
from getm_tui.app.fleet import RunnersSeen
from getm_tui.app.queue_reader import QueueWindow
from getm_tui.config import Settings
from getm_tui.queue.interface import open_queue
from getm_tui.queue.records import RunnerInfo
from getm_tui.queue.views import View
from getm_tui.runner.endpoint import socket_path
from tests.app.test_app_snapshots import DOWNLOADS, T0, MiB, _counts, _jobs
from tests.helpers.app_util import SLOW_RATE, SLOW_SIZE, cells, select, until
from tests.helpers.faultserver import FaultServer
from tests.helpers.kill_util import descendants, kill_group_and_wait
from tests.helpers.runner_util import start

FLEET = "postgresql://getm@db.example.org/getm"


def _runners() -> list[RunnerInfo]:
    return [
        RunnerInfo(1, "dl-01", 4242, "/srv/getm", T0 - 3600, T0 + 198, 2, 37.5 * MiB, 9 * 2**30, 41, "alive"),
        RunnerInfo(2, "dl-02", 977, "/var/lib/getm", T0 - 3500, T0 + 120, 1, 0.0, 2**30, 7, "lost"),
        RunnerInfo(3, "dl-03", 31, "/var/lib/getm", T0 - 9000, T0 - 8000, 0, 0.0, 0, 3, "stopped"),
    ]  # fmt: skip


@pytest.mark.slow
def test_main_screen_on_a_fleet(snap_compare, tmp_path: Path):
    """The runners panel beside throughput and integrity; the fleet's rate in the summary; each running
    job's speed (and so its ETA) as its runner wrote it."""
    app = GetmApp(str(tmp_path / "data"), Settings(download_dir=DOWNLOADS, queue=FLEET), poll=False)
    app._sample_rate = lambda: None  # type: ignore[method-assign]
    assert app.link is None and app.mode == "fleet"

    async def run_before(pilot: Pilot) -> None:
        jobs = _jobs()
        speeds = {2: 24.5 * MiB, 3: 13 * MiB}
        for job in jobs:
            job.rate = speeds.get(job.id)
        app.post_message(QueueWindow(jobs, 0, len(jobs), _counts(jobs), View()))
        await pilot.pause()
        app.post_message(RunnersSeen(_runners(), T0 + 200))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 30), run_before=run_before)


@pytest.mark.slow
def test_the_app_on_a_fleet_runs_nothing_and_steers_through_the_database(postgres_url, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    with open_queue(postgres_url) as q:
        [job] = q.add_many([{"url": "http://127.0.0.1:9/never.bin", "directory": str(out)}])
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    app = GetmApp(data_dir, Settings(download_dir=str(out), queue=postgres_url))
    with open_queue(postgres_url) as runner:  # a runner elsewhere, seen through the database
        assert runner.join_fleet("/elsewhere", 30.0)
        runner.heartbeat()

        async def scenario(pilot: Pilot) -> None:
            panel = app.main.query_one("#runners-text")
            host = os.uname().nodename
            await until(
                pilot, lambda: f"{host}:{os.getpid()} alive 0 jobs" in str(panel.render()), "the runner"
            )
            await select(pilot, job)
            await pilot.press("space")
            await until(pilot, lambda: app.rows[job].job.state == "paused", "the pause, read back")

        async def main() -> None:
            async with app.run_test(size=(120, 30)) as pilot:
                await scenario(pilot)

        asyncio.run(main())
    assert app.link is None
    assert not os.path.exists(socket_path(data_dir))  # no supervisor was started here
    with open_queue(postgres_url) as q:
        assert q.get(job).state == "paused"
        assert q.runners()[0].data_dir == "/elsewhere"  # the app did not join the fleet
        assert len(q.runners()) == 1


@pytest.mark.slow
def test_the_app_on_a_fleet_shows_the_speed_its_runner_writes(
    fault_server: FaultServer, postgres_url, tmp_path: Path
):
    """A runner on another 'host' (a data dir of its own) downloads a throttled file; the app, which
    reads the database only, shows the job's speed in its row and beside the selected job."""
    out = tmp_path / "out"
    out.mkdir()
    url = fault_server.add("/slow.bin", bytes(SLOW_SIZE), rate_limit=SLOW_RATE)
    with open_queue(postgres_url) as q:
        [job] = q.add_many([{"url": url, "directory": str(out)}])
    env = {"GETM_TUI_QUEUE": postgres_url, "GETM_TUI_CONCURRENCY": "2", "GETM_TUI_PART_SIZE": "1M"}
    runner = start(str(tmp_path / "runner"), "run", "--json", env=env)
    seen: set[int] = set()
    app = GetmApp(str(tmp_path / "data"), Settings(download_dir=str(out), queue=postgres_url))

    async def main() -> None:
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: job in app.rows and app.rows[job].job.state == "active", "the job")
            await until(pilot, lambda: cells(app, job)[4].endswith("/s"), "its speed", timeout=30)
            await select(pilot, job)
            await until(pilot, lambda: "slow.bin: " in _rate_text(app) and "/s" in _rate_text(app), "beside")

    try:
        asyncio.run(main())
        seen = {p.pid for p in descendants(runner.pid)}
    finally:
        kill_group_and_wait(runner.pid, seen)
        runner.wait(10)
    assert app.link is None  # the speed came from the database, not from a supervisor of its own


def _rate_text(app: GetmApp) -> str:
    return str(app.main.query_one("#rate-text").render())
