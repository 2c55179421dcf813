"""The app on a queue far longer than its screen (a million jobs, here 20,000): it holds a window of rows
around the view, not the queue, and its order, filter, scrolling and counts cover the whole queue.

No supervisor (connect=False): the poller reads the real queue file, as it does with one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from getm_tui.app.app import GetmApp
from getm_tui.app.widgets.queue_table import QueueTable
from getm_tui.config import Settings
from getm_tui.queue.sqlite import Queue

JOBS = 20_000
SIZE = (100, 30)

pytestmark = pytest.mark.slow


def name_of(i: int) -> str:
    """Names that sort in the reverse of the order the jobs were added in."""
    return f"{JOBS - i:05d}.bin"


@pytest.fixture(scope="module")
def long_queue(tmp_path_factory: pytest.TempPathFactory) -> str:
    data = str(tmp_path_factory.mktemp("long") / "data")
    with Queue(data) as q:
        q.add_many({"url": f"https://example.org/q/{name_of(i)}", "directory": "/tmp"} for i in range(JOBS))
    return data


async def until(pilot: Pilot, predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.02)
    return value


def drive(data: str, scenario: Callable[[GetmApp, Pilot, QueueTable], Any]) -> None:
    app = GetmApp(data, Settings(download_dir="/tmp"), connect=False)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            table = app.main.query_one("#queue", QueueTable)
            await until(pilot, lambda: app.rows and app.counts, "the first rows and the counts")
            await scenario(app, pilot, table)

    asyncio.run(main())


def shown_name(app: GetmApp, table: QueueTable) -> str | None:
    job_id = table.selected_id
    row = app.rows.get(job_id) if job_id is not None else None
    return row.job.display_name if row else None


def test_the_app_holds_a_window_and_scrolls_through_the_whole_queue(long_queue):
    async def scenario(app: GetmApp, pilot: Pilot, table: QueueTable) -> None:
        assert app.total == JOBS and app.counts["queued"] == JOBS
        assert f"{JOBS} queued" in str(app.main.query_one("#summary", Static).render())
        assert len(app.rows) < 500 and len(table.ids) == len(app.rows)
        assert shown_name(app, table) == name_of(0)
        await pilot.press("end")
        await until(pilot, lambda: shown_name(app, table) == name_of(JOBS - 1), "the last job")
        assert len(app.rows) < 500 and app.offset > JOBS - 500
        await pilot.press("pageup")
        await until(pilot, lambda: shown_name(app, table) is not None, "the row above")
        assert table.selected_id is not None and table.selected_id < JOBS
        await pilot.press("home")
        await until(pilot, lambda: shown_name(app, table) == name_of(0), "the first job again")
        pages = 40
        for _ in range(pages):  # page by page: the window follows
            await pilot.press("pagedown")
        index = pages * app.main.view_rows()
        await until(pilot, lambda: shown_name(app, table) == name_of(index), "the row under the cursor")
        assert table.selected_id == index + 1 and len(app.rows) < 500

    drive(long_queue, scenario)


def test_sort_and_filter_cover_the_whole_queue(long_queue):
    async def scenario(app: GetmApp, pilot: Pilot, table: QueueTable) -> None:
        await pilot.press("s")
        assert app.sort == "name"
        # The first name is the last job added: far outside the rows the app held.
        await until(pilot, lambda: table.ids[:1] == [JOBS], "the whole queue sorted by name")
        assert shown_name(app, table) == name_of(JOBS - 1)
        await pilot.press("slash", *"12345")
        await until(pilot, lambda: app.total == 1 and table.ids == [JOBS - 12345 + 1], "the one match")
        await pilot.press("escape")
        await until(pilot, lambda: app.total == JOBS, "every job again")
        for _ in range(5):
            await pilot.press("s")
        assert app.sort == "added"
        await until(pilot, lambda: table.ids[:1] == [1], "the order jobs were added in")

    drive(long_queue, scenario)


def test_the_counts_and_window_follow_the_queue(tmp_path: Path):
    data = str(tmp_path / "data")
    with Queue(data) as q:
        q.add_many({"url": f"https://example.org/{i}.bin", "directory": "/tmp"} for i in range(3000))

    async def scenario(app: GetmApp, pilot: Pilot, table: QueueTable) -> None:
        assert app.total == 3000
        with Queue(data) as q:
            q.remove([1, 2], delete_file=False)
            [new] = q.add_many([{"url": "https://example.org/new.bin", "directory": "/tmp"}])
        await until(pilot, lambda: app.counts["queued"] == 2999 and table.ids[0] == 3, "the changes")
        await pilot.press("end")
        await until(pilot, lambda: table.selected_id == new, "the new job at the end")

    drive(data, scenario)
