"""The app's reader of the queue: a thread that reads the window of rows the app asks for (and the counts
by state) whenever the queue or the request changes, and posts it to the app's event loop.

The app never touches the queue on its loop: its cost stays that of the rows on screen, whatever the
queue's length (ARCHITECTURE.md, invariant 4).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from textual.app import App
from textual.message import Message

from getm_tui.app.fleet import RUNNERS_EVERY, RunnersSeen
from getm_tui.queue.errors import QueueCorrupt, QueueError
from getm_tui.queue.interface import JobQueue, open_queue
from getm_tui.queue.records import Job
from getm_tui.queue.views import View

POLL_SECONDS = 0.2
# Counting a million jobs by state takes tens of milliseconds: while the queue changes, the counts are
# read again at most once a second, and never more than a twentieth of the time (the window itself, a few
# hundred rows, is read at every change).
COUNT_EVERY = 1.0
COUNT_SHARE = 20


class QueueWindow(Message):
    """A window of the queue read by the poller: its jobs, in the view's order from the `offset`th on, the
    jobs the view holds in all (`total`), and the jobs per state (None: not read yet)."""

    def __init__(
        self, jobs: list[Job], offset: int, total: int, counts: dict[str, int] | None, view: View
    ) -> None:
        super().__init__()
        self.jobs = jobs
        self.offset = offset
        self.total = total
        self.counts = counts
        self.view = view


class QueueReader:
    """Reads `want` (a view, the offset of its first row, how many rows) for `app` from the queue at
    `location`; `ask` changes what it reads, `stop` ends it."""

    def __init__(
        self, app: App[Any], location: str, timeout_ms: int, want: tuple[View, int, int], fleet: bool = False
    ) -> None:
        self.app = app
        self.fleet = fleet  # a fleet's queue: the runners are read too (fleet.RUNNERS_EVERY)
        self.location = location
        self.timeout_ms = timeout_ms
        self.want = want
        self.stop = threading.Event()
        self.wake = threading.Event()

    def ask(self, want: tuple[View, int, int]) -> None:
        self.want = want
        self.wake.set()

    def _open_checked(self) -> JobQueue | None:
        """The queue, once it is whole. A damaged file is not read here, nor kept open (an open connection
        would stop the recovery): the supervisor backs it up and rebuilds it, and then this opens it."""
        told = False
        while not self.stop.is_set():
            try:
                return open_queue(self.location, timeout_ms=self.timeout_ms, check=True)
            except QueueCorrupt as e:
                if not told:
                    told = True
                    self.app.call_from_thread(self.app.notify, str(e), severity="error", timeout=10)
                self.stop.wait(0.5)
            except QueueError as e:
                self.app.call_from_thread(self.app.notify, str(e), severity="error", timeout=30)
                return None
        return None

    def _first_look(self) -> None:
        """The first window, read before the queue is checked: the check reads the whole file (about a
        second for a million jobs), and the rows should be on screen before that. The connection is
        closed at once, so a recovery of a damaged file is not kept waiting; a file too damaged to read
        shows nothing here, and the checked open below says what is wrong."""
        view, offset, limit = self.want
        try:
            with open_queue(self.location, timeout_ms=self.timeout_ms) as q:
                jobs = q.window(view, limit, offset)
                total = offset + len(jobs) if len(jobs) < limit else q.count(view)
        except QueueError:
            return
        self.app.post_message(QueueWindow(jobs, offset, total, None, view))

    def run(self) -> None:
        """The thread's body: until the app stops, read the window asked for whenever the queue or the
        request changes, and post it to the app."""
        self._first_look()
        q = self._open_checked()
        if q is None:
            return
        shown: tuple[View, int, int] | None = None  # the window last posted
        shown_version: int | None = None  # the queue's version it was read at
        counts: dict[str, int] = {}
        counts_version: int | None = None
        count_again = 0.0  # when the counts may be read again
        matching: tuple[View, int] | None = None  # the filter's count, when there is one
        try:
            runners_at = 0.0
            while not self.stop.is_set():
                if self.fleet and time.monotonic() - runners_at >= RUNNERS_EVERY:
                    runners_at = time.monotonic()
                    self.app.post_message(RunnersSeen(q.runners(), time.time()))
                self.wake.clear()
                now = q.data_version()
                want = self.want
                view, offset, limit = want
                recount = counts_version != now and time.monotonic() >= count_again
                if now == shown_version and want == shown and not recount:
                    self.wake.wait(POLL_SECONDS)
                    continue
                started = time.monotonic()
                if recount:
                    counts, counts_version = q.counts(), now
                if view.text and (recount or matching is None or matching[0] != view):
                    matching = (view, q.count(view))
                if recount:
                    took = time.monotonic() - started
                    count_again = started + max(COUNT_EVERY, COUNT_SHARE * took)
                jobs = q.window(view, limit, offset)
                total = matching[1] if view.text and matching else sum(counts.values())
                if len(jobs) < limit and (jobs or not offset):  # the window reaches the end: the exact length
                    total = offset + len(jobs)
                shown, shown_version = want, now
                self.app.post_message(QueueWindow(jobs, offset, total, counts, view))
                self.wake.wait(POLL_SECONDS)
        except QueueError as e:
            self.app.call_from_thread(self.app.notify, str(e), severity="error", timeout=30)
        finally:
            q.close()
