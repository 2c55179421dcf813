"""The queue table: a million rows, of which only a window around the view is held and only the visible
lines are ever drawn.

The table knows how many rows the whole list has (its scroll range) but holds the cells of one window of
them, given by the screen; a line outside the window is drawn blank and asks for the rows around it
(WantRows), which the app reads from the queue in the background.

Textual's DataTable renders each cell through Rich and keys its line cache on a counter that every
`update_cell` bumps and on the cursor position, so a live progress tick or a cursor move re-renders every
visible cell, which costs a large part of a frame's budget. Here a line is one string cut to the column
widths, cached per job with what it was drawn from; a changed row or a cursor move repaints only its own
line, and nothing is drawn for rows out of view.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cells = tuple[str, ...]


def fit(text: str, width: int, right: bool = False) -> str:
    """`text` in exactly `width` cells: cut with an ellipsis, padded on the left when `right`."""
    if width <= 0:
        return ""
    length = len(text) if text.isascii() else cell_len(text)
    if length > width:
        text = set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
        length = width
    pad = " " * (width - length)
    return pad + text if right else text + pad


class QueueTable(ScrollView, can_focus=True):
    """Rows keyed by job id, in an order the screen gives; a cursor that follows its job across reorders."""

    DEFAULT_CSS = """
    QueueTable {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        &:focus {
            background-tint: $foreground 5%;
            & > .queue-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
        & > .queue-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:dark > .queue-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .queue-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .queue-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .queue-table--empty {
            color: $text-muted;
        }
    }
    """
    COMPONENT_CLASSES = {
        "queue-table--header",
        "queue-table--even-row",
        "queue-table--cursor",
        "queue-table--empty",
    }
    BINDINGS = [
        Binding("up", "cursor_by(-1)", "Up", show=False),
        Binding("down", "cursor_by(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    class WantRows(Message):
        """The view reached rows the table does not hold: the app should give it a window from `first`
        (the index of the first row in view) on."""

        def __init__(self, first: int, rows: int) -> None:
            super().__init__()
            self.first = first
            self.rows = rows

    class Selected(Message):
        """Enter, or a click on the job under the cursor: open it."""

        def __init__(self, job_id: int) -> None:
            super().__init__()
            self.job_id = job_id

    cursor_id: var[int | None] = var(None)
    """The job under the cursor (None: no rows). A reactive rather than a message: a screen that
    `watch`es it redraws its panels in the same turn as the cursor line, so both reach the terminal in
    one frame. A posted message is handled after that frame, and its changes wait for the next one
    (Textual paints at most 60 times a second), a frame late for every press of Down."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.headings: Cells = ()
        self.widths: tuple[int | None, ...] = ()  # None: the column that takes the rest of the width
        self.right: tuple[bool, ...] = ()
        self.gap = 1
        self.empty_text = ""
        self._cells: dict[int, Cells] = {}
        self._order: list[int] = []  # the window's job ids, in order
        self._offset = 0  # the index of the window's first row in the whole list
        self._total = 0  # rows in the whole list
        self._index: dict[int, int] = {}  # job id -> its index in the whole list
        self._asked: int | None = None  # the first row of the last WantRows not yet answered
        self._cursor = 0
        self._laid_out: tuple[int, ...] = ()
        self._lines: dict[int, tuple[tuple[object, ...], Strip]] = {}
        self._styles: dict[tuple[tuple[str, ...], bool], Style] = {}

    # -- what the screen tells it -----------------------------------------------------------------

    def set_columns(
        self, headings: Sequence[str], widths: Sequence[int | None], right: Sequence[bool], gap: int
    ) -> None:
        self.headings = tuple(headings)
        self.widths = tuple(widths)
        self.right = tuple(right)
        self.gap = gap
        self._layout()

    @property
    def ids(self) -> list[int]:
        """The job ids the table holds, in the order shown (all of them when the window is the list)."""
        return list(self._order)

    @property
    def window(self) -> tuple[int, list[int], int]:
        """(the index of the first row held, the job ids held, rows in the whole list)."""
        return self._offset, self._order, self._total

    def visible_ids(self) -> list[int]:
        top = round(self.scroll_y) - self._offset
        return self._order[max(0, top) : max(0, top + max(0, self._rows_in_view()))]

    def cells_of(self, job_id: int) -> Cells | None:
        return self._cells.get(job_id)

    def put(self, job_id: int, cells: Cells) -> None:
        """Set a row's cells; its line is repainted only if it is on screen and its text changed."""
        if self._cells.get(job_id) == cells:
            return
        self._cells[job_id] = cells
        index = self._index.get(job_id)
        if index is not None and self._visible(index):
            self.refresh_line(index + 1)

    def set_order(self, ids: list[int]) -> None:
        """Show these rows (each `put` before) in this order, and no others."""
        self.set_window(0, ids, len(ids))

    def set_window(self, offset: int, ids: list[int], total: int) -> None:
        """Hold these rows (each `put` before), the `offset`th of `total` on; the cursor stays on its job if
        it is still held, else at its place."""
        self._order = ids
        self._offset = offset
        self._total = max(total, offset + len(ids))
        self._index = {job_id: n for n, job_id in enumerate(ids, offset)}
        self._asked = None
        for gone in self._cells.keys() - self._index.keys():
            del self._cells[gone]
            self._lines.pop(gone, None)
        self._size_to_rows()
        index = self._index.get(self.cursor_id) if self.cursor_id is not None else None
        self._move(self._cursor if index is None else index, force=True)
        self.refresh()

    def forget_cursor(self) -> None:
        """Put the cursor on the first row at the next `set_window`, rather than on its job: where the job
        is in a new order of a long list is not known until the window around it is read."""
        self._cursor = 0
        self.cursor_id = None
        self.scroll_to(y=0, animate=False, immediate=True)

    @property
    def selected_id(self) -> int | None:
        return self._id_at(self._cursor)

    def _id_at(self, index: int) -> int | None:
        """The job at this index of the whole list, if the window holds it."""
        at = index - self._offset
        return self._order[at] if 0 <= at < len(self._order) and index < self._total else None

    def select_id(self, job_id: int) -> None:
        self._move(self._index[job_id])

    # -- cursor -----------------------------------------------------------------------------------

    def action_cursor_by(self, delta: int) -> None:
        self._move(self._cursor + delta)

    def action_cursor_to(self, index: int) -> None:
        self._move(index if index >= 0 else self._total - 1)

    def action_select(self) -> None:
        if self.selected_id is not None:
            self.post_message(self.Selected(self.selected_id))

    def action_page(self, direction: int) -> None:
        self._move(self._cursor + direction * max(1, self._rows_in_view()))

    def _move(self, index: int, force: bool = False) -> None:
        index = max(0, min(index, self._total - 1))
        before = self._cursor
        self._cursor = index
        if before != index and not force:
            self.refresh_line(before + 1)
            self.refresh_line(index + 1)
        self._scroll_into_view(index)
        self._ask_ahead()
        self.cursor_id = self.selected_id  # watchers run now

    def _ask_ahead(self) -> None:
        """Ask for rows before the view reaches the window's edge, so that moving through a long list
        rarely shows a blank line."""
        rows = max(1, self._rows_in_view())
        top = round(self.scroll_y)
        start, end = self._offset, self._offset + len(self._order)
        if self._total and self.selected_id is None and not top <= self._cursor < top + rows:
            self._want_rows(max(0, self._cursor - rows + 1))  # not in view (not laid out yet): its rows
        elif (start > 0 and top - rows < start) or (end < self._total and top + 2 * rows > end):
            self._want_rows()

    def _rows_in_view(self) -> int:
        return self.scrollable_content_region.height - 1

    def _want_rows(self, first: int | None = None) -> None:
        """Ask for the rows around the view (from `first`, else its top), once until a window comes."""
        top = round(self.scroll_y) if first is None else first
        if self._asked != top:
            self._asked = top
            self.post_message(self.WantRows(top, max(1, self._rows_in_view())))

    def _visible(self, index: int) -> bool:
        top = round(self.scroll_y)
        return top <= index < top + self._rows_in_view()

    def _scroll_into_view(self, index: int) -> None:
        rows = self._rows_in_view()
        if rows <= 0:
            return
        top = round(self.scroll_y)
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + rows:
            self.scroll_to(y=index - rows + 1, animate=False, immediate=True)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        index = round(self.scroll_y) + offset.y - 1
        job_id = self._id_at(index)
        if job_id is None:
            return
        if index == self._cursor:
            self.post_message(self.Selected(job_id))
        else:
            self._move(index)

    # -- drawing ----------------------------------------------------------------------------------

    def _size_to_rows(self) -> None:
        """A line a row and one for the header; no wider than the view (nothing scrolls sideways)."""
        self.virtual_size = Size(self.scrollable_content_region.width, self._total + 1)

    def _layout(self) -> None:
        width = self.scrollable_content_region.width
        fixed = sum(w for w in self.widths if w is not None) + self.gap * len(self.widths)
        rest = max(8, width - fixed)
        self._laid_out = tuple(rest if w is None else w for w in self.widths)
        self._lines.clear()
        self.refresh()

    def _text(self, cells: Sequence[str]) -> str:
        gap = " " * self.gap
        return gap + gap.join(
            fit(c, w, r) for c, w, r in zip(cells, self._laid_out, self.right, strict=False)
        )

    def on_resize(self, _event: events.Resize) -> None:
        self._size_to_rows()
        self._layout()
        self._scroll_into_view(self._cursor)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._lines.clear()
        self.refresh()

    def on_focus(self) -> None:
        self.refresh_line(self._cursor + 1)

    def on_blur(self) -> None:
        self.refresh_line(self._cursor + 1)

    def _style(self, *components: str) -> Style:
        """The widget's style plus these component classes, worked out once per theme and focus
        state: Textual resolves a style by walking the DOM each time (a sort or a scroll repaints every
        line, and that walk was most of the cost of a line)."""
        key = (components, self.has_focus)
        style = self._styles.get(key)
        if style is None:
            style = self.rich_style
            for name in components:
                style += self.get_component_rich_style(name)
            self._styles[key] = style
        return style

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            style = self._style("queue-table--header")
            return Strip([Segment(fit(self._text(self.headings), width), style)], width)
        index = round(self.scroll_y) + y - 1
        if index >= self._total:
            if index == 0 and self.empty_text:
                style = self._style("queue-table--empty")
                return Strip([Segment(fit(" " + self.empty_text, width), style)], width)
            return Strip.blank(width, self._style())
        job_id = self._id_at(index)
        cells = self._cells.get(job_id) if job_id is not None else None
        if job_id is None or cells is None:  # not held yet: blank until the rows come
            self._want_rows()
            return Strip.blank(width, self._style(*(("queue-table--even-row",) if index % 2 else ())))
        cursor = index == self._cursor
        key = (cells, index % 2, cursor, self.has_focus, width)
        cached = self._lines.get(job_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        components = []
        if index % 2:
            components.append("queue-table--even-row")
        if cursor:
            components.append("queue-table--cursor")
        style = self._style(*components)
        strip = Strip([Segment(fit(self._text(cells), width), style)], width)
        self._lines[job_id] = (key, strip)
        return strip
