"""The threads of a job host and what its jobs hand on to the next: a job host (jobhost.py) runs its jobs
in a few long-lived threads rather than one thread per job, and keeps a finished job's worker pool and
keep-alive session for the next one.
"""

from __future__ import annotations

import queue as _queue
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from getm_tui.queue.records import Job

T = TypeVar("T")


class _Ends(Protocol):
    @property
    def ended(self) -> threading.Event: ...  # set when its thread is done with the job


J = TypeVar("J", bound=_Ends)


class Spares(Generic[T]):
    """Things a finished job hands to the next one, up to `limit` kept; thread-safe."""

    def __init__(self, make: Callable[[], T], close: Callable[[T], None], limit: int) -> None:
        self._make = make
        self._close = close
        self._limit = limit
        self._items: list[T] = []
        self._lock = threading.Lock()

    def take(self) -> T:
        with self._lock:
            if self._items:
                return self._items.pop()
        return self._make()

    def give(self, item: T, keep: bool = True) -> None:
        with self._lock:
            if keep and len(self._items) < self._limit:
                self._items.append(item)
                return
        self._close(item)

    def close_all(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for item in items:
            self._close(item)


class JobThreads(Generic[J]):
    """Threads that run jobs one after another, up to `limit` of them.

    A queue of small files starts a job every millisecond or two; a thread of its own for each cost a
    thread start and exit per job. A thread is named after the job it runs (`job-ID`): ForwardLogs
    tells from the name which job a log record belongs to.
    """

    def __init__(self, target: Callable[[J, Job], None], limit: int) -> None:
        self._target = target
        self._limit = max(1, limit)
        self._inbox: _queue.SimpleQueue[tuple[J, Job] | None] = _queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def run(self, r: J, job: Job) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1  # that thread is this job's: the next call must not count on it
                start = False
            else:
                # At the limit every thread is busy with a job that has just ended (at most max_active
                # run at once): the first to come back takes this one.
                start = len(self._threads) < self._limit
        self._inbox.put((r, job))
        if start:
            thread = threading.Thread(target=self._loop, name="job-idle", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            item = self._inbox.get()
            if item is None:
                return
            r, job = item
            me.name = f"job-{job.id}"
            try:
                self._target(r, job)
            finally:
                me.name = "job-idle"
                with self._lock:
                    self._idle += 1
                r.ended.set()

    def close(self) -> None:
        """Let idle threads go (a thread still in a job takes its None when that job ends)."""
        for _ in self._threads:
            self._inbox.put(None)


def job_of_thread() -> int | None:
    """The job the calling thread runs, from its name (`job-ID`), or None."""
    name = threading.current_thread().name
    return int(name[4:]) if name.startswith("job-") and name[4:].isdigit() else None
