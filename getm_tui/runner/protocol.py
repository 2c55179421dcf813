"""Messages between a front end and the supervisor: small picklable dataclasses, nothing shared.

Supervisor -> front end: Hello once, then a coalesced Snapshot at most 10 times a second (its size is the
number of running jobs, not the byte rate), JobChanged when a job changes state, LogLine for log records.
Front end -> supervisor: the commands below. The queue itself (every job, done or not) front ends read
from SQLite; snapshots carry only what is live.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- supervisor -> front end ------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    pid: int
    data_dir: str
    # False when the supervisor runs every job without TLS verification (--insecure): a front end that
    # attaches later must be able to say so, it never saw the runner's own warning.
    verify_tls: bool = True


@dataclass(frozen=True)
class Busy:
    """The queue is already run by another supervisor."""

    pid: int | None


@dataclass(frozen=True)
class LiveJob:
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


@dataclass(frozen=True)
class Snapshot:
    at: float
    jobs: tuple[LiveJob, ...]
    rate: float
    rate_limit: int


@dataclass(frozen=True)
class JobChanged:
    id: int
    state: str
    message: str = ""


@dataclass(frozen=True)
class LogLine:
    level: int
    message: str


@dataclass(frozen=True)
class Fatal:
    """The supervisor cannot run the queue (unreadable, corrupted or locked queue file)."""

    message: str


@dataclass(frozen=True)
class Finished:
    """The supervisor stopped (`run --once` found nothing left, or it was asked to)."""

    failed: int
    done: int


# -- front end -> supervisor ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Resume:
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Retry:
    ids: tuple[int, ...]


@dataclass(frozen=True)
class SetURL:
    """Give a job a new URL (states.NEW_URL): a signed URL that expired, replaced."""

    id: int
    url: str


@dataclass(frozen=True)
class Remove:
    ids: tuple[int, ...]
    delete_file: bool = False


@dataclass(frozen=True)
class SetConcurrency:
    id: int
    concurrency: int


@dataclass(frozen=True)
class SetPriority:
    id: int
    priority: int


@dataclass(frozen=True)
class Wake:
    """Look at the queue now (a front end just added jobs)."""


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class Detach:
    """The front end goes away; the supervisor keeps running."""
