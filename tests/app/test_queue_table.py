"""The queue table alone: cursor, scrolling, clicks, and that a change repaints only its own line."""

from __future__ import annotations

import asyncio

import pytest
from textual.app import App, ComposeResult

from getm_tui.app.widgets.queue_table import QueueTable, fit

ROWS = 2000
HEIGHT = 20  # the terminal: a header line and 19 rows


class TableApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.highlighted: list[int | None] = []
        self.selected: list[int] = []
        self.rendered: list[int] = []

    def compose(self) -> ComposeResult:
        yield QueueTable(id="queue")

    def on_mount(self) -> None:
        table = self.query_one(QueueTable)
        table.set_columns(("Name", "Size"), (None, 8), (False, True), 1)
        for i in range(ROWS):
            table.put(i, (f"file-{i}.bin", f"{i} B"))
        table.set_order(list(range(ROWS)))
        table.focus()
        self.watch(table, "cursor_id", self.cursor_moved, init=False)
        original = table.render_line

        def counting(y: int):  # noqa: ANN202 - whatever QueueTable.render_line returns
            self.rendered.append(y)
            return original(y)

        table.render_line = counting  # type: ignore[method-assign]

    def cursor_moved(self, job_id: int | None) -> None:
        self.highlighted.append(job_id)

    def on_queue_table_selected(self, event: QueueTable.Selected) -> None:
        self.selected.append(event.job_id)


def screen_lines(app: App[None]) -> list[str]:
    table = app.query_one(QueueTable)
    return [table.render_line(y).text for y in range(table.size.height)]


@pytest.mark.parametrize(
    ("text", "width", "right", "expected"),
    [
        ("abc", 5, False, "abc  "),
        ("abc", 5, True, "  abc"),
        ("abcdef", 4, False, "abc…"),
        ("日本語テキスト", 6, False, "日本 …"),  # a wide character that would not fit: a space
        ("x", 0, False, ""),
    ],
)
def test_fit(text: str, width: int, right: bool, expected: str) -> None:
    assert fit(text, width, right) == expected


@pytest.mark.slow
def test_cursor_keys_scroll_and_follow_the_job() -> None:
    asyncio.run(_test_cursor_keys_scroll_and_follow_the_job())


async def _test_cursor_keys_scroll_and_follow_the_job() -> None:
    app = TableApp()
    async with app.run_test(size=(40, HEIGHT)) as pilot:
        table = app.query_one(QueueTable)
        await pilot.pause()
        assert table.selected_id == 0
        lines = screen_lines(app)
        assert lines[0].startswith(" Name") and lines[0].rstrip().endswith("Size")
        assert lines[1].startswith(" file-0.bin") and lines[1].rstrip().endswith("0 B")

        await pilot.press("pagedown")
        assert table.selected_id == HEIGHT - 1  # a page: the 19 rows in view
        await pilot.press("end")
        assert table.selected_id == ROWS - 1
        await pilot.pause()
        assert screen_lines(app)[-1].startswith(f" file-{ROWS - 1}.bin")
        await pilot.press("home", "down", "down")
        assert table.selected_id == 2
        assert app.highlighted[-1] == 2

        # Reordered (say, sorted the other way): the cursor stays on job 2, now near the end, in view.
        table.set_order(list(reversed(range(ROWS))))
        await pilot.pause()
        assert table.selected_id == 2
        assert any(line.startswith(" file-2.bin") for line in screen_lines(app))
        # The job under the cursor goes away: the cursor keeps its place, on the job now there.
        table.set_order([i for i in reversed(range(ROWS)) if i != 2])
        await pilot.pause()
        assert table.selected_id == 1
        assert app.highlighted[-1] == 1

        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == [1]


@pytest.mark.slow
def test_click_selects_then_opens() -> None:
    asyncio.run(_test_click_selects_then_opens())


async def _test_click_selects_then_opens() -> None:
    app = TableApp()
    async with app.run_test(size=(40, HEIGHT)) as pilot:
        table = app.query_one(QueueTable)
        await pilot.pause()
        await pilot.click(QueueTable, offset=(2, 4))  # line 4: the fourth row, job 3
        await pilot.pause()
        assert table.selected_id == 3
        assert app.selected == []
        await pilot.click(QueueTable, offset=(2, 4))
        await pilot.pause()
        assert app.selected == [3]
        await pilot.click(QueueTable, offset=(2, 0))  # the header: nothing happens
        await pilot.pause()
        assert table.selected_id == 3


def test_only_changed_lines_are_drawn() -> None:
    asyncio.run(_test_only_changed_lines_are_drawn())


async def _test_only_changed_lines_are_drawn() -> None:
    """2,000 rows, a frame after one visible row changes draws that one line; off-screen changes none."""
    app = TableApp()
    async with app.run_test(size=(40, HEIGHT)) as pilot:
        table = app.query_one(QueueTable)
        await pilot.pause()
        app.rendered.clear()
        table.put(5, ("file-5.bin", "99 B"))
        await pilot.pause()
        assert app.rendered == [6]  # header is line 0, job 5 the sixth row
        assert screen_lines(app)[6].rstrip().endswith("99 B")

        app.rendered.clear()
        table.put(1500, ("file-1500.bin", "1 KiB"))  # far out of view
        await pilot.pause()
        assert app.rendered == []
        assert table.cells_of(1500) == ("file-1500.bin", "1 KiB")

        app.rendered.clear()
        await pilot.press("down")  # the cursor leaves line 1 for line 2: two lines
        await pilot.pause()
        assert sorted(set(app.rendered)) == [1, 2]
