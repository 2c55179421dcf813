"""What the app shows of a job, as plain values: shared by the table, the panels and the details screen.

Kept free of Textual so it can be tested alone and so each table cell is a value that compares equal when
nothing changed (only changed cells are redrawn).
"""

from __future__ import annotations

from dataclasses import dataclass

from getm_tui import humanize
from getm_tui.queue.records import Job
from getm_tui.queue.views import SORTS, STATE_ORDER
from getm_tui.runner.protocol import LiveJob

COLUMNS = ("name", "state", "progress", "size", "speed", "eta", "conns", "integrity")
HEADINGS = ("Name", "State", "Progress", "Size", "Speed", "ETA", "Conns", "Integrity")
BAR_WIDTH = 10
COMPACT_BAR = 3
# Column widths (name takes what is left): wide from 110 columns, compact below (80 columns fit).
WIDTHS = {"state": 8, "progress": 15, "size": 10, "speed": 11, "eta": 7, "conns": 5, "integrity": 14}
COMPACT_WIDTHS = {"state": 6, "progress": 8, "size": 9, "speed": 10, "eta": 6, "conns": 5, "integrity": 10}
RIGHT = ("size", "speed", "eta")  # numbers line up on the right
__all__ = ["SORTS", "JobRow", "sort_key"]  # SORTS: the queue's orders (queue/views.py), which the app cycles


@dataclass
class JobRow:
    """A job as the app knows it: its queue row, and what the supervisor says while it runs."""

    job: Job
    live: LiveJob | None = None

    @property
    def done(self) -> int:
        return self.live.done if self.live else self.job.bytes_done

    @property
    def size(self) -> int | None:
        if self.live and self.live.size is not None:
            return self.live.size
        return self.job.size

    @property
    def fraction(self) -> float | None:
        if self.job.state == "done":
            return 1.0
        size = self.size
        return min(1.0, self.done / size) if size else None

    def cells(self, compact: bool = False) -> tuple[str, ...]:
        job, live = self.job, self.live
        frac = self.fraction
        running = live is not None and job.state == "active"
        rate = live.rate if live and running else (job.rate or 0.0)  # a fleet's: as its runner wrote it
        eta = (self.size - self.done) / rate if rate and self.size else None
        return (
            job.display_name,
            job.state,
            bar(frac, COMPACT_BAR if compact else BAR_WIDTH),
            humanize.size(self.size),
            humanize.rate(rate) if job.state == "active" else "",
            humanize.duration(eta) if eta is not None else "",
            f"{live.connections}/{live.concurrency}"
            if live and job.state == "active"
            else str(job.concurrency or ""),
            integrity_label(job),
        )


def row_changed(shown: Job, read: Job) -> bool:
    """Whether a job read again must be shown again: its row changed, or its progress or speed did (a
    fleet's runners write those with each progress record; a queue file's come live from its supervisor,
    and its progress writes leave `updated` alone)."""
    return (shown.updated, shown.bytes_done, shown.rate) != (read.updated, read.bytes_done, read.rate)


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    if fraction is None:
        return " " * width + "    "
    full = int(fraction * width + 1e-9)
    return "█" * full + "░" * (width - full) + f" {fraction * 100:3.0f}%"


def integrity_label(job: Job) -> str:
    if job.verdict == "verified":
        algos = sorted({i.get("algorithm", "") for i in job.integrity if i.get("ok")})
        return "✓ " + ",".join(algos) if algos else "✓ verified"
    if job.verdict == "mismatch":
        return "✗ mismatch"
    if job.verdict == "unverified":
        return "unverified"
    return "pending" if job.checksums or job.state in ("active", "queued", "paused") else ""


def verdict_of(job: Job) -> str:
    return job.verdict or ("pending" if job.state not in ("failed", "canceled") else "unverified")


def sort_key(row: JobRow, how: str) -> tuple[object, ...]:
    """The order of views.SORTS for the rows the app holds (the queue sorts the whole queue the same way)."""
    job = row.job
    if how == "name":
        return (job.display_name.lower(), job.id)
    if how == "state":
        return (STATE_ORDER.index(job.state) if job.state in STATE_ORDER else 9, job.id)
    if how == "size":
        return (-(row.size or 0), job.id)
    if how == "progress":
        return (-(row.fraction or 0.0), job.id)
    if how == "priority":
        return (-job.priority, job.id)
    return (job.id,)


def segment_map(segments: tuple[tuple[int, int, int, str], ...], width: int) -> str:
    """One character per slice of the file: █ done, ▓ in flight, ! retrying, ░ still to fetch."""
    if not segments or width <= 0:
        return ""
    total = sum(max(0, length) for _s, length, _d, _st in segments)
    if total <= 0:
        return "▓" * width if any(st == "active" for *_x, st in segments) else "░" * width
    out = []
    for i in range(width):
        lo = total * i // width
        hi = max(lo + 1, total * (i + 1) // width)
        out.append(_cell(segments, lo, hi))
    return "".join(out)


def _cell(segments: tuple[tuple[int, int, int, str], ...], lo: int, hi: int) -> str:
    states = set()
    for start, length, done, state in segments:
        if start >= hi or start + length <= lo:
            continue
        if state == "retrying":
            states.add("!")
        elif start + done >= min(hi, start + length):
            states.add("█")
        elif state == "active":
            states.add("▓")
        else:
            states.add("░")
    for mark in ("!", "▓", "░", "█"):
        if mark in states:
            return mark
    return "░"
