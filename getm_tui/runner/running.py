"""What the supervisor knows of a job it runs: its host, its control, its progress and rate (Running), and
how a job's end is judged from its files."""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass, field
from typing import Any

from getm_tui.engine import Progress, control
from getm_tui.engine.files import part_path
from getm_tui.queue.records import Job
from getm_tui.runner.budget import Kind
from getm_tui.runner.jobhost import JobHost, LiveControl

LOST = "another runner took this job over (this one's lease ran out)"


@dataclass
class Running:
    job_id: int
    name: str
    host: JobHost | None = None
    cancelled: bool = False
    control: LiveControl = field(default_factory=lambda: LiveControl(4))
    sent: tuple[int, float | None] | None = None  # the control its host was last told of
    progress: Progress | None = None
    history: collections.deque[tuple[float, int]] = field(
        default_factory=lambda: collections.deque(maxlen=40)
    )
    # Per connection: each part in flight's (time, bytes done, smoothed rate), and the rates for screens.
    parts_seen: dict[int, tuple[float, int, float | None]] = field(default_factory=dict)
    conn_rates: tuple[float, ...] = ()
    lost: bool = False  # another runner of the fleet took the job over: nothing more is written about it
    committing: bool = False  # its file is done and waits for the group commit's sync (no slot held)
    kind: Kind = "unknown"  # what its probe said: how many connections it can use (runner/budget.py)
    cap: int = 1  # the connections its share of max_connections allows (its control asks for its own)
    asked: int = 0  # what its control asked for when `cap` was shared out
    directory: str = ""  # where its file goes (the names its engine claims are in there)
    overwrite: bool = False  # its file replaces what is under its name (add --overwrite, a mirror's job)

    def measure(self, p: Progress) -> int:
        """Record a progress report: the job's history, and a smoothed rate per part in flight; the bytes
        fetched since the last report."""
        now = time.monotonic()
        fetched = max(0, p.done - self.progress.done) if self.progress is not None else 0
        self.history.append((now, p.done))
        rates = []
        for start, _length, done, state in p.segments:
            if state != "active":
                self.parts_seen.pop(start, None)
                continue
            seen = self.parts_seen.get(start)
            rate = None
            if seen is not None and now > seen[0]:
                instant = (done - seen[1]) / (now - seen[0])
                rate = instant if seen[2] is None else 0.7 * seen[2] + 0.3 * instant
                rates.append(rate)
            self.parts_seen[start] = (now, done, rate)
        self.conn_rates = tuple(rates)
        self.progress = p
        return fetched


def partial_exists(rec: dict[str, Any] | None, job: Job) -> bool:
    name = control.claimed_name(rec, job.url)
    return name is not None and os.path.exists(part_path(os.path.join(job.directory, name)))


def rate_of(history: collections.deque[tuple[float, int]], window: float = 2.0) -> float:
    """Bytes per second over the last `window` seconds of progress samples."""
    if len(history) < 2:
        return 0.0
    t1, d1 = history[-1]
    if time.monotonic() - t1 > window:
        return 0.0
    t0, d0 = next((t, d) for t, d in history if t1 - t <= window)
    return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0
