"""The main screen: the queue, its throughput and the selected job's integrity.

Only cells whose text changed are redrawn: the screen keeps the last text of every cell and compares.
"""

from __future__ import annotations

from collections import deque

from rich.markup import escape
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Sparkline, Static

from getm_tui import humanize
from getm_tui.engine.urls import redact
from getm_tui.view import COLUMNS, COMPACT_WIDTHS, HEADINGS, WIDTHS, JobRow, sort_key, verdict_of

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
        self.shown: dict[int, tuple[str, ...]] = {}
        self.order: list[int] = []
        self._texts: dict[str, str] = {}
        self.rates: deque[float] = deque([0.0] * HISTORY_SECONDS, maxlen=HISTORY_SECONDS)

    def compose(self) -> ComposeResult:
        yield Static("", id="summary")
        table: DataTable[str] = DataTable(id="queue", cursor_type="row", zebra_stripes=True)
        yield table
        yield Input(placeholder="filter by name (Escape clears)", id="filter")
        with Horizontal(id="panels"):
            with Vertical(id="throughput"):
                yield Sparkline(list(self.rates), id="rate-history")
                yield Static("", id="rate-text")
            with Vertical(id="integrity"):
                yield Static("", id="integrity-text")
        yield Footer(compact=True, show_command_palette=self.app.size.width >= WIDE_FOOTER)

    def on_mount(self) -> None:
        self._columns(self.app.size.width)
        self.query_one("#throughput").border_title = "Throughput"
        self.query_one("#throughput").border_subtitle = f"last {HISTORY_SECONDS}s"
        self.query_one("#integrity").border_title = "Integrity"
        self.query_one("#filter", Input).display = False
        self.query_one("#queue", DataTable).focus()
        self.app._redraw(None)  # type: ignore[attr-defined]

    def _columns(self, width: int) -> None:
        """(Re)build the columns for this terminal width; rows are rebuilt on the next refresh."""
        self.compact = width < 110
        table = self.query_one("#queue", DataTable)
        table.clear(columns=True)
        table.cell_padding = 0 if self.compact else 1
        widths = COMPACT_WIDTHS if self.compact else WIDTHS
        pad = 1 if self.compact else 2
        fixed = sum(widths.values()) + pad * len(widths) + 2
        name_width = max(8, width - fixed - pad)
        for key, heading in zip(COLUMNS, HEADINGS, strict=True):
            table.add_column(heading, key=key, width=(widths.get(key) or name_width) + (pad == 1))
        self.order = []
        self.shown.clear()
        footer = self.query_one(Footer)
        if footer.show_command_palette != (width >= WIDE_FOOTER):
            footer.show_command_palette = width >= WIDE_FOOTER
            footer.call_after_refresh(footer.recompose)

    def on_resize(self, event: events.Resize) -> None:
        if not self.is_mounted:
            return
        compact = event.size.width < 110
        table = self.query_one("#queue", DataTable)
        if compact != self.compact or table.columns:
            self._columns(event.size.width)
            self.app._redraw(None)  # type: ignore[attr-defined]

    # -- the table --------------------------------------------------------------------------------

    def selected_id(self) -> int | None:
        table = self.query_one("#queue", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # the cursor is between rows while the table is rebuilt
            return None
        return int(key.value) if key.value is not None else None

    def refresh_rows(
        self, rows: dict[int, JobRow], changed: set[int] | None, sort: str, text: str, reorder: bool = True
    ) -> None:
        """Bring the table in line with `rows`; `changed` limits the work to those ids (None: all).

        Without `reorder` (live progress) rows keep their places: re-sorting 2,000 rows ten times a second
        costs more than the frame, and a table that jumps under the cursor is no help either. Rows are
        re-sorted when the queue itself changes, and when the sort or the filter does.
        """
        table = self.query_one("#queue", DataTable)
        if not reorder and self.order and changed is not None:
            self._update_cells(table, rows, changed)
            return
        wanted = [i for i, r in rows.items() if not text or text.lower() in r.job.display_name.lower()]
        wanted.sort(key=lambda i: sort_key(rows[i], sort))
        if wanted != self.order:
            selected = self.selected_id()
            keep = set(wanted)
            for job_id in [i for i in self.shown if i not in keep]:
                table.remove_row(str(job_id))
                del self.shown[job_id]
            for job_id in wanted:
                if job_id not in self.shown:
                    cells = rows[job_id].cells(self.compact)
                    table.add_row(*_literal(cells), key=str(job_id))
                    self.shown[job_id] = cells
            _reorder(table, wanted)
            self.order = wanted
            if selected in self.shown:
                table.move_cursor(row=self.order.index(selected), animate=False)
        self._update_cells(table, rows, changed)

    def _update_cells(
        self, table: DataTable[Text], rows: dict[int, JobRow], changed: set[int] | None
    ) -> None:
        for job_id in self.order if changed is None else changed & self.shown.keys():
            if job_id not in rows:
                continue
            cells = rows[job_id].cells(self.compact)
            old = self.shown[job_id]
            if cells == old:
                continue
            literal = _literal(cells)
            for col, (new, before) in enumerate(zip(cells, old, strict=True)):
                if new != before:
                    table.update_cell(str(job_id), COLUMNS[col], literal[col])
            self.shown[job_id] = cells

    # -- header and panels ------------------------------------------------------------------------

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
        mine = humanize.rate(live.rate) if live else "-"
        self._set("#rate-text", escape(f"{rate_text}\n{row.job.display_name}: {mine}"))
        self._set("#integrity-text", escape(integrity_text(row)))

    def _set(self, selector: str, text: str) -> None:
        """Update a Static only when its text changed: each update re-parses markup and relayouts."""
        if self._texts.get(selector) != text:
            self._texts[selector] = text
            self.query_one(selector, Static).update(text)

    # -- filter -----------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.query_one("#queue", DataTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.app.set_filter(event.value)  # type: ignore[attr-defined]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query_one("#queue", DataTable).focus()

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.app.selection_changed()  # type: ignore[attr-defined]

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.app.action_details()  # type: ignore[attr-defined]


def _reorder(table: DataTable[Text], ids: list[int]) -> None:
    """Put the table's rows in this order without rebuilding them (2,000 add_rows took seconds).

    This is what DataTable.sort does after computing its order, which it can only compute from cell
    values; ours comes from the model. Should Textual's internals change, rebuild instead.
    """
    try:
        from textual._two_way_dict import TwoWayDict
        from textual.widgets._data_table import RowKey

        table._row_locations = TwoWayDict({RowKey(str(i)): n for n, i in enumerate(ids)})
        table._update_count += 1
        table.refresh()
    except (ImportError, AttributeError):
        rows = {str(i): [table.get_cell(str(i), c) for c in COLUMNS] for i in ids}
        table.clear()
        for i in ids:
            table.add_row(*rows[str(i)], key=str(i))


def _literal(cells: tuple[str, ...]) -> tuple[Text, ...]:
    """Cells as plain Text: a name from a server is never read as markup."""
    return tuple(Text(c, no_wrap=True, overflow="ellipsis") for c in cells)


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
