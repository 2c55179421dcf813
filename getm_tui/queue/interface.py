"""What the verbs, the supervisor, the job hosts and the app may ask of a queue, whatever stores it.

Nothing outside getm_tui.queue reaches a backend's connection, SQL or private members: a second backend
(PostgreSQL) only has to implement `JobQueue` and pass the contract tests (tests/queue/contract), and
`open_queue` is where a front end's queue location becomes a backend.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol

from getm_tui.queue.records import (
    Event,
    Extent,
    Fingerprint,
    Finished,
    Job,
    JobSpec,
    Listed,
    RunnerInfo,
    RunningRow,
)
from getm_tui.queue.removal import Removal
from getm_tui.queue.states import Outcome, Transition
from getm_tui.queue.views import View

if TYPE_CHECKING:
    from types import TracebackType

    from getm_tui.queue.notices import Notices


class JobQueue(Protocol):
    """One connection to a queue of download jobs. Cheap to open: one per process or thread.

    Every method raises a QueueError (getm_tui.queue.errors) with a one-line message when the store cannot
    be used; UnknownJob when a job asked for by id does not exist.
    """

    data_dir: str

    def close(self) -> None: ...

    def __enter__(self) -> JobQueue: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap way to notice new work."""
        ...

    def batch(self, immediate: bool = False) -> AbstractContextManager[None]:
        """The block's writes in one transaction, all or none. `immediate`: take the write lock at once,
        so that what the block reads cannot change before it writes. A batch inside a batch is part of it."""
        ...

    # -- adding and reading -----------------------------------------------------------------------

    def add_many(self, specs: Iterable[JobSpec]) -> list[int]:
        """Add jobs, all or none, in order; their ids. `specs` may be a stream (a million URLs): it is
        read as it is inserted, and an error midway adds nothing."""
        ...

    def get(self, job_id: int) -> Job: ...

    def check_ids(self, ids: Sequence[int]) -> list[Job]:
        """The jobs, in order, or UnknownJob naming every id that does not exist."""
        ...

    def jobs(self, states: Sequence[str] | None = None) -> list[Job]: ...

    def iter_jobs(self, states: Sequence[str] | None = None) -> Iterator[Job]:
        """Jobs by id, streamed (a queue may hold a hundred thousand)."""
        ...

    def listing(self, states: Sequence[str] | None = None) -> Iterator[Listed]:
        """What a job table shows of each job (records.Listed), by id, streamed: iter_jobs without the
        columns the table does not show."""
        ...

    def window(self, view: View, limit: int, offset: int = 0, after: int | None = None) -> list[Job]:
        """Up to `limit` jobs of the view (its filter, in its order: views.View), skipping the first
        `offset`; with `after`, the jobs that come after that job in the view's order (keyset paging: pass
        the last job of a page for the next). Costs what the window holds, however long the queue."""
        ...

    def count(self, view: View) -> int:
        """How many jobs the view's filter lets through (all of them when it has no text)."""
        ...

    def changed_since(self, since: float) -> list[Job]:
        """Jobs whose row changed at or after `since` (progress saves don't count: they come live)."""
        ...

    def fingerprint(self) -> Fingerprint: ...

    def ids(self) -> set[int]: ...

    def counts(self) -> dict[str, int]:
        """Jobs per state, every state present."""
        ...

    def extent(self) -> Extent: ...

    def events(self, job_id: int) -> list[Event]:
        """The job's history, oldest first."""
        ...

    # -- what users do (states.py defines each) ---------------------------------------------------

    def apply(self, transition: Transition, job_ids: Sequence[int]) -> list[Outcome]:
        """Move each job the transition applies to, record its event, and say why the others did not
        move; in one transaction, and nothing at all if an id is unknown (UnknownJob)."""
        ...

    def remove(
        self, job_ids: Sequence[int], delete_file: bool, running: Collection[int] | None = None
    ) -> list[Removal]:
        """Remove jobs (UnknownJob, and nothing removed, if an id is unknown). A job a supervisor runs is
        handed to it; other rows go now and their files are for the caller to delete. `running`: the
        jobs the calling supervisor runs; None from anyone else, when the queue tells."""
        ...

    def set_url(self, job_id: int, url: str) -> Outcome:
        """Give the job another URL (states.NEW_URL: queued again, its resume record kept), recording the
        event with the URL redacted; or say why not. `url` is validated by the caller. UnknownJob if the
        job does not exist."""
        ...

    def set_priority(self, job_id: int, priority: int) -> None: ...

    def set_concurrency(self, job_id: int, concurrency: int) -> int:
        """Set the job's connections, within the limits states.py gives; the value set."""
        ...

    # -- what the supervisor does -----------------------------------------------------------------

    def requeue_active(self) -> list[int]:
        """Jobs a stopped supervisor left active go back to the queue (the caller runs the queue now)."""
        ...

    def next_runnable(self, limit: int, exclude: Collection[int] = ()) -> list[Job]:
        """Queued jobs by priority (higher first), then age."""
        ...

    def claim(self, job_id: int) -> bool:
        """queued -> active, for the supervisor about to run it; False if it is no longer queued."""
        ...

    def unclaim(self, job_id: int) -> bool:
        """active -> queued: a job the supervisor stopped running without an end (it stops itself)."""
        ...

    def running_rows(self, job_ids: Collection[int]) -> dict[int, RunningRow]:
        """State and concurrency of the jobs the supervisor runs; a job that is gone is left out."""
        ...

    def record_probe(self, job_id: int, path: str, size: int | None, info: dict[str, Any]) -> None:
        """What a job's first response said: its file, its size, and what is kept for a resume."""
        ...

    def finish(self, job_id: int, result: Finished) -> None:
        """The job is done, with its file's verdict; its resume record goes."""
        ...

    def fail(self, job_id: int, error: str, mismatch: bool, kept: bool) -> None:
        """The job failed (`mismatch`: its bytes did not match a checksum); `kept`: its partial file is
        still there, so the bytes done stay counted."""
        ...

    def delete(self, job_id: int) -> None:
        """The row and its history go (the supervisor, once a removed job has stopped)."""
        ...

    def log_event(self, job_id: int, kind: str, message: str) -> None: ...

    def load_resume(self, job_id: int) -> dict[str, Any] | None: ...

    def claim_runnable(self, limit: int, exclude: Collection[int] = ()) -> list[Job]:
        """Claim up to `limit` queued jobs (queued -> active) by priority, then age; a job another runner
        claims at the same moment is skipped, never taken twice."""
        ...

    # -- a fleet: several runners share the queue (PostgreSQL) ------------------------------------

    def join_fleet(self, data_dir: str, lease_timeout: float) -> bool:
        """Run jobs as one runner of several: register this process (host, pid, data dir); from now on
        its claims are leases and its writes about the jobs it holds are fenced by their epoch. False for
        a queue one supervisor runs alone (SQLite: the supervisor lock says who)."""
        ...

    def heartbeat(self, bytes_done: int = 0, jobs_done: int = 0) -> set[int]:
        """Renew this runner's leases (and count what it did since the last beat); the jobs it held and
        lost since the last beat (another runner took them over): it must write nothing more about them."""
        ...

    def holds(self, job_id: int) -> bool:
        """False once this runner has lost the job to another (a write about it found a newer epoch)."""
        ...

    def runners(self) -> list[RunnerInfo]:
        """The fleet's runners, alive, lost or stopped (none for a queue one supervisor runs)."""
        ...

    def leave_fleet(self) -> None:
        """This runner stops (its jobs are back in the queue): it is shown as stopped, not lost."""
        ...

    def take_turn(self, key: str, seconds: float) -> float:
        """A fleet's periodic task (`key`, e.g. a saved mirror's listing) is done by one runner per
        `seconds`: 0.0 when the caller takes the turn now, else the seconds until the current turn ends.
        Always 0.0 for a queue one supervisor runs."""
        ...

    def save_resume(self, job_id: int, record: dict[str, Any], rate: float | None = None) -> None:
        """Keep a job's resume record (written by its host's engine), and the bytes it says are done; a
        fleet's runner adds the job's recent speed (bytes per second), for front ends on other hosts."""
        ...

    def listen(self) -> Notices | None:
        """A connection that becomes readable when another process adds or steers a job (wait on it with
        the rest, then take what it heard); None for a queue file, whose supervisor hears every command
        itself. Raises QueueUnreachable as connecting does."""
        ...

    def origin_slots(self) -> OriginSlots | None:
        """What a fleet's runners share to be polite to an origin as one (max_connections_per_host,
        Retry-After); None for a queue one supervisor runs alone (it counts for itself), and before
        `join_fleet`."""
        ...

    def reconnect(self) -> None:
        """Connect again after QueueUnreachable (a database that went away); raises it while the
        database is still away. Nothing to do for a queue file."""
        ...


class OriginSlots(Protocol):
    """The connection slots of each origin that a fleet's runners share, and the holds of origins that
    asked everyone to wait (queue/postgres_origins.py says how)."""

    def claim_slots(self, origin: str, cap: int, count: int) -> list[int]:
        """Up to `count` of the origin's `cap` slots that nobody alive holds (none while it is held),
        now this runner's (they expire with its heartbeat)."""
        ...

    def release_slots(self, origin: str, slots: Sequence[int]) -> None: ...

    def hold_origin(self, origin: str, seconds: float) -> None:
        """Nobody opens a connection to `origin` for `seconds`; every runner is told."""
        ...

    def origin_holds(self) -> dict[str, float]:
        """The origins held now, with the seconds left."""
        ...


def open_queue(
    location: str,
    timeout_ms: int | None = None,
    check: bool | Literal["later"] = False,
    recover: bool = False,
) -> JobQueue:
    """The queue a front end names: a data directory (SQLite), or a PostgreSQL connection string (a
    libpq URL or keyword string, see location.py) for a fleet.

    `timeout_ms`: how long to wait for a lock. `check`: fail with QueueCorrupt on a damaged store.
    `recover`: check, and rebuild a damaged store from what can be read, with one warning (SQLite; a
    database server keeps its own tables whole). `check="later"`: for a reader that need not wait for the
    check before its first row: it runs beside the reads, and closing the queue waits for its verdict
    (QueueCorrupt; sqlite.Queue says more)."""
    from getm_tui.queue.location import is_database

    if is_database(location):
        from getm_tui.queue.postgres import PostgresQueue

        return PostgresQueue(location, timeout_ms=timeout_ms)
    from getm_tui.queue.sqlite import Queue

    return Queue(location, timeout_ms=timeout_ms, check=check, recover=recover)
