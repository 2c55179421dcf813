"""Driving the Textual app in tests: a queue with a fault server behind it (Env), the app run with the
Pilot against its real supervisor, and waits on the app's state with a deadline."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Static

from getm_tui.app.app import GetmApp
from getm_tui.app.widgets.queue_table import QueueTable
from getm_tui.config import Settings
from getm_tui.queue.sqlite import Job, Queue, UnknownJob
from tests.helpers.faultserver import FaultServer

MiB = 1024 * 1024
SIZE = (100, 30)

# A job that stays active for many seconds: 64 MiB at 1 MiB/s per connection.
SLOW_SIZE = 64 * MiB
SLOW_RATE = 1 * MiB


@dataclass
class Env:
    server: FaultServer
    data_dir: str
    out: Path
    settings: Settings

    def slow(self, name: str) -> str:
        return self.server.add(f"/{name}", bytes(SLOW_SIZE), rate_limit=SLOW_RATE)

    def small(self, name: str, size: int = 100_000) -> str:
        return self.server.add(f"/{name}", os.urandom(size))

    def add(self, *urls: str, concurrency: int | None = 2, **extra: Any) -> list[int]:
        with Queue(self.data_dir) as q:
            return q.add_many(
                [{"url": u, "directory": str(self.out), "concurrency": concurrency, **extra} for u in urls]
            )

    def job(self, job_id: int) -> Job | None:
        with Queue(self.data_dir) as q:
            try:
                return q.get(job_id)
            except UnknownJob:
                return None

    def jobs(self) -> list[Job]:
        with Queue(self.data_dir) as q:
            return q.jobs()

    def app(self) -> GetmApp:
        return GetmApp(self.data_dir, self.settings)


# -- driving the app ------------------------------------------------------------------------------


def drive(
    app: GetmApp,
    scenario: Callable[[Pilot], Awaitable[None]],
    size: tuple[int, int] = SIZE,
    linked: bool = True,
) -> None:
    """Run `scenario` against the app once it is linked to its supervisor; stop that supervisor after."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            if linked:
                await until(pilot, lambda: app.mode in ("started", "attached"), "the supervisor link")
            await scenario(pilot)

    try:
        asyncio.run(main())
    finally:
        if app.link is not None:
            app.link.close()  # as the CLI does after the app ends (a no-op if `q` already did)


async def until(pilot: Pilot, predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def table(app: GetmApp) -> QueueTable:
    return app.main.query_one("#queue", QueueTable)


def cells(app: GetmApp, job_id: int) -> list[str]:
    return list(table(app).cells_of(job_id) or ())


def table_ids(app: GetmApp) -> list[int]:
    """The job ids in the order the table shows them."""
    return table(app).ids


async def select(pilot: Pilot, job_id: int) -> None:
    app = pilot.app
    assert isinstance(app, GetmApp)
    await until(pilot, lambda: job_id in table_ids(app), f"job {job_id} in the table")
    table(app).select_id(job_id)
    await pilot.pause()
    assert app.main.selected_id() == job_id


def state_in_app(app: GetmApp, job_id: int) -> str | None:
    row = app.rows.get(job_id)
    return row.job.state if row else None


def text_of(widget: Static) -> str:
    return str(widget.render())


def notified(app: GetmApp, fragment: str) -> bool:
    return any(fragment in n.message for n in app._notifications)


async def active_with_progress(pilot: Pilot, env: Env, job_id: int) -> None:
    """The job runs, the app has a live snapshot of it, and some of it is fetched."""
    app = pilot.app
    assert isinstance(app, GetmApp)
    await until(pilot, lambda: state_in_app(app, job_id) == "active", f"job {job_id} active in the app")
    await until(
        pilot, lambda: job_id in app.live and app.live[job_id].done > 0, f"a live snapshot of job {job_id}"
    )
