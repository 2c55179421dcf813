"""Messages between a front end and the supervisor: small picklable NamedTuples, nothing shared.

Supervisor -> front end: Hello once, then a coalesced Snapshot at most 10 times a second (its size is the
number of running jobs, not the byte rate), JobChanged when a job changes state, LogLine for log records.
Front end -> supervisor: the commands below. The queue itself (every job, done or not) front ends read
from SQLite; snapshots carry only what is live.
"""

from __future__ import annotations

from typing import NamedTuple

# -- supervisor -> front end ------------------------------------------------------------------------


class Hello(NamedTuple):
    pid: int
    data_dir: str
    # False when the supervisor runs every job without TLS verification (--insecure): a front end that
    # attaches later must be able to say so, it never saw the runner's own warning.
    verify_tls: bool = True


class Busy(NamedTuple):
    """The queue is already run by another supervisor."""

    pid: int | None


class LiveJob(NamedTuple):
    """What only the supervisor knows about a running job."""

    id: int
    name: str
    size: int | None
    done: int
    rate: float
    connections: int
    concurrency: int
    parts_done: int
    parts_total: int
    retries: int
    segments: tuple[tuple[int, int, int, str], ...] = ()
    conn_rates: tuple[float, ...] = ()


class Snapshot(NamedTuple):
    at: float
    jobs: tuple[LiveJob, ...]
    rate: float
    rate_limit: int


class JobChanged(NamedTuple):
    id: int
    state: str
    message: str = ""


class LogLine(NamedTuple):
    level: int
    message: str


class Fatal(NamedTuple):
    """The supervisor cannot run the queue (unreadable, corrupted or locked queue file)."""

    message: str


class Finished(NamedTuple):
    """The supervisor stopped (`run --once` found nothing left, or it was asked to)."""

    failed: int
    done: int


# -- front end -> supervisor ------------------------------------------------------------------------


class Pause(NamedTuple):
    ids: tuple[int, ...]


class Resume(NamedTuple):
    ids: tuple[int, ...]


class Retry(NamedTuple):
    ids: tuple[int, ...]


class SetURL(NamedTuple):
    """Give a job a new URL (states.NEW_URL): a signed URL that expired, replaced."""

    id: int
    url: str


class Remove(NamedTuple):
    ids: tuple[int, ...]
    delete_file: bool = False


class SetConcurrency(NamedTuple):
    id: int
    concurrency: int


class SetPriority(NamedTuple):
    id: int
    priority: int


class Wake(NamedTuple):
    """Look at the queue now (a front end just added jobs)."""


class Shutdown(NamedTuple):
    pass


class Detach(NamedTuple):
    """The front end goes away; the supervisor keeps running."""
