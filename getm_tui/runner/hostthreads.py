"""The threads of a job host and what its jobs hand on to the next: a job host (jobhost.py) runs its jobs
in a few long-lived threads rather than one thread per job, and keeps a finished job's worker pool and
keep-alive session for the next one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
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


# How long a job may wait for a thread of its host before the host starts another (up to the limit). A
# host's threads share one GIL, and every system call of one lets another take it: on a fast server the
# host's jobs are bound by its CPU, more threads only add those turns, and fewer threads working through
# the waiting jobs finish them sooner. A small file from a fast server takes a thread about a
# millisecond, so the few jobs a host holds wait well under this; a job that waits longer shows that
# the threads wait on the network, and more of them overlap those waits.
PATIENCE = 0.02


class JobThreads(Generic[J]):
    """Threads that run jobs one after another, up to `limit` of them, started as jobs wait for them.

    A queue of small files starts a job every millisecond or two; a thread of its own for each cost a
    thread start and exit per job. The first job starts the first thread; another starts only when a job
    has waited `patience` seconds with every thread busy (the host's loop asks, `grow`), so a host keeps as
    many threads as its jobs need to overlap their waits on the network: one against a fast server, up to
    `limit` against a slow one. A thread is named after the job it runs (`job-ID`): ForwardLogs tells
    from the name which job a log record belongs to.
    """

    def __init__(self, target: Callable[[J, Job], None], limit: int, patience: float = PATIENCE) -> None:
        self._target = target
        self._limit = max(1, limit)
        self._patience = patience
        # Jobs no thread has taken yet, with when they came (None: a thread is to go).
        self._waiting: deque[tuple[float, J, Job] | None] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job, or started and about to take one
        self._closing = False

    def run(self, r: J, job: Job) -> None:
        with self._cond:
            self._waiting.append((time.monotonic(), r, job))
            if self._idle:
                self._cond.notify()
            if not self._threads:
                self._start()  # the first thread starts with the first job, the others as jobs wait
            else:
                self._grow()

    def grow(self) -> float | None:
        """Start a thread for each job that has waited `patience` with no thread to take it, up to the
        limit; the seconds until the next look is due, or None when no job waits for a thread that may
        still be started."""
        with self._cond:
            return self._grow()

    def _grow(self) -> float | None:
        """`grow`, the caller holding the condition's lock."""
        if self._closing or not self._waiting or len(self._threads) >= self._limit:
            return None
        now = time.monotonic()
        aged = 0
        for item in self._waiting:  # oldest first
            assert item is not None  # None is queued only by close
            if now - item[0] < self._patience:
                break
            aged += 1
        for _ in range(min(aged - self._idle, self._limit - len(self._threads))):
            self._start()
        if aged < len(self._waiting):
            younger = self._waiting[aged]
            assert younger is not None
            return self._patience - (now - younger[0])
        return self._patience

    def hurry(self) -> None:
        """From now on no job waits for a thread (up to the limit): at a stop every job is cancelled,
        and each must end, and say so, within the grace instead of after the busy threads' jobs."""
        with self._cond:
            self._patience = 0.0
        self.grow()

    def _start(self) -> None:
        """A new thread (the caller holds the condition's lock): it counts as idle until it takes a job."""
        self._idle += 1
        thread = threading.Thread(target=self._loop, name="job-idle", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                item = self._waiting.popleft()
                self._idle -= 1
            if item is None:
                return
            _, r, job = item
            me.name = f"job-{job.id}"
            try:
                self._target(r, job)
            finally:
                me.name = "job-idle"
                with self._cond:
                    self._idle += 1
                r.ended.set()

    def close(self) -> None:
        """Let idle threads go (a thread still in a job takes its None when that job ends)."""
        with self._cond:
            self._closing = True
            self._waiting.extend(None for _ in self._threads)
            self._cond.notify_all()


def job_of_thread() -> int | None:
    """The job the calling thread runs, from its name (`job-ID`), or None."""
    name = threading.current_thread().name
    return int(name[4:]) if name.startswith("job-") and name[4:].isdigit() else None
