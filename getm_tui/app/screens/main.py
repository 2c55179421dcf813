"""The main screen: the queue, its throughput and the selected job's integrity.

Only rows whose text changed are redrawn, and only when they are in view (see widgets/queue_table.py); the
table holds the window of the queue the app has read, not the queue.
"""

from __future__ import annotations

from collections import deque

from rich.markup import escape
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Sparkline, Static

from getm_tui import humanize
from getm_tui.app.rows import COLUMNS, COMPACT_WIDTHS, HEADINGS, RIGHT, WIDTHS, JobRow, verdict_of
from getm_tui.app.widgets.queue_table import QueueTable
from getm_tui.engine.urls import redact

HISTORY_SECONDS = 60
# Related keys share one footer entry ("+- Conns"), so that every key fits in 80 columns; these come last
# in the footer (a key right after a group's label would stick to it).
CONNS = Binding.Group("Conns", compact=True)
PRIO = Binding.Group("Prio", compact=True)
# Below this width the footer leaves out its "^p palette" key so that every key of the screen fits.
WIDE_FOOTER = 100


class MainScreen(Screen[None]):
    BINDINGS = [
        Binding("a", "app.add", "Add"),
        Binding("space", "app.toggle_pause", "Pause"),
        Binding("r", "app.retry", "Retry"),
        Binding("u", "app.new_url", "New URL", show=False),
        Binding("delete", "app.remove", "Remove"),
        Binding("enter", "app.details", "Details"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "app.cycle_sort", "Sort"),
        Binding("q", "app.quit", "Quit"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("plus,+", "app.more_connections", "+conn", key_display="+", group=CONNS),
        Binding("minus,-", "app.fewer_connections", "-conn", key_display="-", group=CONNS),
        Binding("left_square_bracket", "app.lower_priority", "Prio-", key_display="[", group=PRIO),
        Binding("right_square_bracket", "app.raise_priority", "Prio+", key_display="]", group=PRIO),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._texts: dict[str, str] = {}
        self.rates: deque[float] = deque([0.0] * HISTORY_SECONDS, maxlen=HISTORY_SECONDS)

    def compose(self) -> ComposeResult:
        yield Static("", id="summary")
        yield QueueTable(id="queue")
        yield Input(placeholder="filter by name (Escape clears)", id="filter")
        with Horizontal(id="panels"):
            with Vertical(id="throughput"):
                yield Sparkline(list(self.rates), id="rate-history")
                yield Static("", id="rate-text")
            with Vertical(id="integrity"):
                yield Static("", id="integrity-text")
            if getattr(self.app, "fleet", False):  # a fleet's queue: who runs what
                with Vertical(id="runners"):
                    yield Static("no runner seen yet", id="runners-text")
        yield Footer(compact=True, show_command_palette=self.app.size.width >= WIDE_FOOTER)

    def on_mount(self) -> None:
        self._columns(self.app.size.width)
        self.query_one("#throughput").border_title = "Throughput"
        self.query_one("#throughput").border_subtitle = f"last {HISTORY_SECONDS}s"
        self.query_one("#integrity").border_title = "Integrity"
        for panel in self.query("#runners"):
            panel.border_title = "Runners"
        self.query_one("#filter", Input).display = False
        self._table().focus()
        self.watch(self._table(), "cursor_id", self.app.selection_changed, init=False)  # type: ignore[attr-defined]
        self.app._redraw(None)  # type: ignore[attr-defined]

    def _columns(self, width: int) -> None:
        """Lay the columns out for this terminal width: compact below 110 columns, so 80 fit."""
        self.compact = width < 110
        widths = COMPACT_WIDTHS if self.compact else WIDTHS
        gap = 1 if self.compact else 2
        right = [key in RIGHT for key in COLUMNS]
        table = self._table()
        table.set_columns(HEADINGS, [widths.get(key) for key in COLUMNS], right, gap)
        table.set_order([])  # the cells were made for the other layout
        footer = self.query_one(Footer)
        if footer.show_command_palette != (width >= WIDE_FOOTER):
            footer.show_command_palette = width >= WIDE_FOOTER
            footer.call_after_refresh(footer.recompose)

    def on_resize(self, event: events.Resize) -> None:
        if not self.is_mounted:
            return
        if (event.size.width < 110) != self.compact:
            self._columns(event.size.width)
            self.app._redraw(None)  # type: ignore[attr-defined]

    # -- the table --------------------------------------------------------------------------------

    def _table(self) -> QueueTable:
        return self.query_one("#queue", QueueTable)

    def selected_id(self) -> int | None:
        return self._table().selected_id

    def view_rows(self) -> int:
        """How many rows the table shows at once."""
        return max(1, self._table().scrollable_content_region.height - 1)

    def refresh_rows(
        self,
        rows: dict[int, JobRow],
        window: tuple[int, list[int], int],
        changed: set[int] | None,
    ) -> None:
        """Bring the table in line with `rows`, held in `window`'s order (the index of its first row, the
        ids, the length of the whole list); `changed` limits the work to those ids (None: the rows in view).

        The order changes only when the app reads the queue or the sort or filter changes: live progress
        leaves rows in their places, as a table that jumps under the cursor is no help.
        """
        table = self._table()
        if window != table.window:
            offset, order, total = window
            for job_id in order:
                if table.cells_of(job_id) is None:
                    table.put(job_id, rows[job_id].cells(self.compact))
            table.set_window(offset, list(order), total)
        # Without a list of changes nothing but the order is known to have changed (a sort, a filter, a
        # resize): rows out of view keep their text until they change or come into view.
        for job_id in table.visible_ids() if changed is None else changed:
            row = rows.get(job_id)
            if row is not None and table.cells_of(job_id) is not None:
                table.put(job_id, row.cells(self.compact))

    def forget_cursor(self) -> None:
        self._table().forget_cursor()

    def empty_text(self, text: str) -> None:
        self._table().empty_text = "no job matches the filter" if text else "no jobs: press a to add one"

    def on_queue_table_want_rows(self, event: QueueTable.WantRows) -> None:
        self.app.want_rows(event.first, event.rows)  # type: ignore[attr-defined]

    # -- header and panels ------------------------------------------------------------------------

    def show_runners(self, text: str) -> None:
        for panel in self.query("#runners-text").results(Static):
            panel.update(escape(text))

    def show_summary(
        self, counts: dict[str, int], total_rate: float, mode: str, sort: str, text: str
    ) -> None:
        # The mode first, so a narrow terminal never hides it; there, states with no job are left out
        # (the line wraps rather than cut anything off).
        states = ("active", "queued", "paused", "done", "failed")
        parts = [f"{counts.get(s, 0)} {s}" for s in states if counts.get(s, 0) or not self.compact]
        extra = f"  filter: {text!r}" if text else ""
        self._set(
            "#summary",
            f"{'' if self.compact else 'getm-tui  '}\\[{mode}]  {' · '.join(parts) or 'no jobs'}"
            f"  ↓ {humanize.rate(total_rate) if total_rate else '0 B/s'}  sort: {sort}{escape(extra)}",
        )

    def push_rate(self, total: float) -> None:
        self.rates.append(total)
        self.query_one("#rate-history", Sparkline).data = list(self.rates)

    def show_selected(self, row: JobRow | None, total_rate: float) -> None:
        rate_text = f"all jobs: {humanize.rate(total_rate) if total_rate else '0 B/s'}"
        if row is None:
            self._set("#rate-text", rate_text)
            self._set("#integrity-text", "no job selected")
            return
        live = row.live if row.job.state == "active" else None
        rate = live.rate if live else row.job.rate if row.job.state == "active" else None
        mine = humanize.rate(rate) if rate is not None else "-"
        self._set("#rate-text", escape(f"{rate_text}\n{row.job.display_name}: {mine}"))
        self._set("#integrity-text", escape(integrity_text(row)))

    def _set(self, selector: str, text: str) -> None:
        """Update a Static only when its text changed, and lay the screen out again only when the new text
        needs another height: a layout re-renders and rewrites the whole screen (8 KiB at 120x40), which at
        two live redraws a second was most of what the app wrote and a third of its CPU."""
        if self._texts.get(selector) == text:
            return
        self._texts[selector] = text
        widget = self.query_one(selector, Static)
        widget.update(text, layout=False)
        width, height = widget.content_size
        if widget.get_content_height(widget.container_size, self.size, width) != height:
            widget.refresh(layout=True)

    # -- filter -----------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self._table().focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.app.set_filter(event.value)  # type: ignore[attr-defined]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._table().focus()

    def on_queue_table_selected(self, _event: QueueTable.Selected) -> None:
        self.app.action_details()  # type: ignore[attr-defined]


def integrity_text(row: JobRow) -> str:
    job = row.job
    lines = [f"verdict: {verdict_of(job)}"]
    if job.integrity:
        for item in job.integrity:
            if item.get("ok"):  # one line: what matched is both the expected and the computed value
                lines.append(f"✓ {item.get('algorithm')} ({item.get('source')}) {item.get('computed')}")
                continue
            lines.append(f"✗ {item.get('algorithm')} ({item.get('source')})")
            lines.append(f"  expected {item.get('expected')}")
            lines.append(f"  computed {item.get('computed')}")
    elif job.checksums:
        lines.extend(f"expected {c}" for c in job.checksums)
        lines.append("computed when the download completes")
    elif job.state == "done":
        lines.append("no checksum was known (server sent none)")
    else:
        lines.append("server checksums are learnt when the download starts")
    if job.error and job.state == "failed":
        lines.append(f"error: {redact(job.error)}")
    return "\n".join(lines)
