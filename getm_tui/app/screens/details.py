"""A job in full: segment map, per-connection rates, size and validator, headers, integrity, history."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from getm_tui import humanize
from getm_tui.app.rows import JobRow, segment_map
from getm_tui.app.screens.main import integrity_text
from getm_tui.engine.expiry import deadline_note
from getm_tui.engine.urls import redact
from getm_tui.queue.records import Event
from getm_tui.runner.protocol import LiveJob


class DetailsScreen(Screen[None]):
    BINDINGS = [Binding("escape,q,enter", "app.pop_screen", "Back")]

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id
        self.events: list[Event] = []
        self._last_segments: dict[int, tuple[float, int]] = {}
        self.conn_rates: list[float] = []
        self._row: JobRow | None = None
        self._live_seen: LiveJob | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="details"):
            yield Static("", id="details-head")
            yield Static("", id="details-map")
            yield Static("", id="details-conns")
            yield Static("", id="details-integrity")
            yield Static("", id="details-headers")
            yield Static("", id="details-history")
        yield Footer()

    def on_mount(self) -> None:
        for key, title in (
            ("map", "Segments"),
            ("conns", "Connections"),
            ("integrity", "Integrity"),
            ("headers", "Server"),
            ("history", "History"),
        ):
            self.query_one(f"#details-{key}").border_title = title
        self.show(self._row)

    def show(self, row: JobRow | None) -> None:
        self._row = row
        if not self.is_mounted:
            return  # the app calls this right after pushing the screen: on_mount shows it
        if row is None:
            self.query_one("#details-head", Static).update(f"job {self.job_id} is no longer in the queue")
            return
        job, live = row.job, row.live if row.job.state == "active" else None
        size = humanize.size(row.size)
        head = [
            f"[b]{escape(job.display_name)}[/b]  (job {job.id}, {job.state}, priority {job.priority})",
            f"url   {escape(redact(job.url))}",
            f"path  {escape(job.path or job.directory)}",
            f"size  {size}   done {humanize.size(row.done)}   connections "
            f"{live.connections if live else 0}/{(live.concurrency if live else job.concurrency) or '-'}",
            escape(f"validator  {job.info.get('validator') or '-'}   ranges {job.info.get('ranges', '-')}"),
        ]
        expires = deadline_note(
            job.url, None if row.size is None else row.size - row.done, live.rate if live else job.rate
        )
        if expires is not None:
            text, urgent = expires
            head.append(f"[red]expires  {escape(text)}[/red]" if urgent else f"expires  {escape(text)}")
        if job.error:
            head.append(f"[red]error  {escape(redact_text(job.error))}[/red]")
        self.query_one("#details-head", Static).update("\n".join(head))
        width = max(10, self.size.width - 6)
        segs = live.segments if live else ()
        if segs:
            legend = "█ done  ▓ in flight  ! retrying  ░ to fetch"
            parts = f"{live.parts_done}/{live.parts_total} parts, {live.retries} retries" if live else ""
            self.query_one("#details-map", Static).update(f"{segment_map(segs, width)}\n{legend}   {parts}")
        else:
            whole = "█" * width if job.state == "done" else "░" * width
            self.query_one("#details-map", Static).update(whole)
        self.query_one("#details-conns", Static).update(self._conn_text(live))
        self.query_one("#details-integrity", Static).update(escape(integrity_text(row)))
        headers = job.info.get("headers") or {}
        self.query_one("#details-headers", Static).update(
            escape("\n".join(f"{k}: {v}" for k, v in headers.items()) or "not probed yet")
        )
        self.query_one("#details-history", Static).update(
            escape("\n".join(f"{time.strftime('%H:%M:%S', time.localtime(at))} {kind:7} {redact_text(msg)}"
                      for at, kind, msg in self.events[-50:]) or "nothing yet")
        )  # fmt: skip

    def _conn_text(self, live: LiveJob | None) -> str:
        """Rates of the parts in flight: the supervisor's when it sends them, else from how far each part
        got between two snapshots (a redraw for a queue change brings no new snapshot: keep the last)."""
        if live is not None and live is not self._live_seen:
            self._live_seen = live
            if live.conn_rates:
                self.conn_rates = list(live.conn_rates)
            else:
                self._measure(live.segments)
        if not self.conn_rates or live is None:
            return "no connection active"
        return _rates(self.conn_rates, self.size.width - 6)

    def _measure(self, segments: tuple[tuple[int, int, int, str], ...]) -> None:
        now = time.monotonic()
        rates = []
        for start, _length, done, state in segments:
            if state != "active":
                continue
            before = self._last_segments.get(start)
            if before is not None and now > before[0]:
                rates.append((done - before[1]) / (now - before[0]))
            self._last_segments[start] = (now, done)
        if rates:
            self.conn_rates = rates


def _rates(rates: Sequence[float], width: int) -> str:
    """`#1 6.0 MiB/s  #2 ...`, a line break only between connections."""
    lines = [""]
    for i, rate in enumerate(rates):
        item = f"#{i + 1} {humanize.rate(rate)}"
        if lines[-1] and len(lines[-1]) + 2 + len(item) > width:
            lines.append(item)
        else:
            lines[-1] = f"{lines[-1]}  {item}" if lines[-1] else item
    return "\n".join(lines)


def redact_text(message: str) -> str:
    """Messages carry redacted URLs already; this catches any that slipped through."""
    import re

    return re.sub(r"https?://\S+", lambda m: redact(m.group(0)), message)
