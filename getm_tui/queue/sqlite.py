"""The persistent queue: jobs, their resume records and error history, in SQLite (WAL).

Every process opens its own connection: the CLI verbs read and write jobs directly (no supervisor is
needed to add or list), the supervisor polls `PRAGMA data_version` to see others' commits within a
fraction of a second, and a job's resume record lives in its row so a SIGKILL of everything loses at most
what was fetched since the last save.

See states.py for what each command does to a job; the supervisor's own moves (claim, unclaim, finish,
fail) are here. A damaged file is found when it is opened with `check` (`PRAGMA quick_check`) or when a
statement fails; opened with `recover`, it is backed up and rebuilt from every job that can still be read
(salvage.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from getm_tui.queue.errors import QueueCorrupt, QueueError, QueueLocked, UnknownJob
from getm_tui.queue.lock import LockTimeout, queue_file_lock, running_supervisor
from getm_tui.queue.records import (
    Event,
    Extent,
    Fingerprint,
    Finished,
    Job,
    JobSpec,
    RunnerInfo,
    RunningRow,
)
from getm_tui.queue.removal import HANDED_OVER, Removal, files_of_removal, supervisor_runs
from getm_tui.queue.rows import JOB_COLUMNS as _COLUMNS
from getm_tui.queue.rows import STATE_OF as _STATE_OF
from getm_tui.queue.rows import job_from_row as _job
from getm_tui.queue.rows import loads_json as _loads
from getm_tui.queue.rows import spec_values
from getm_tui.queue.schema import DB_NAME, SCHEMA, inode_of
from getm_tui.queue.states import (
    STATES,
    JobState,
    Outcome,
    Transition,
    clamp_concurrency,
)
from getm_tui.queue.steering import apply_transition

if TYPE_CHECKING:
    from types import TracebackType

    from getm_tui.queue.salvage import Recovery

__all__ = ["DB_NAME", "STATES", "Job", "Queue", "QueueCorrupt", "QueueError", "QueueLocked", "UnknownJob"]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


# SQLite's primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _CORRUPT, _NOTADB = 5, 6, 11, 26
_CORRUPT_WORDS = ("malformed", "not a database", "corrupt", "encrypted")


def is_corruption(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (_CORRUPT, _NOTADB):
        return True
    text = str(e)
    return any(w in text for w in _CORRUPT_WORDS)


def _is_busy(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (_BUSY, _LOCKED):
        return True
    text = str(e)
    return "locked" in text or "busy" in text


def default_timeout_ms() -> int:
    """How long to wait for a locked queue: $GETM_TUI_QUEUE_TIMEOUT seconds (the config key queue_timeout
    reaches here through Settings), else 10 s. A bad value is one line for the user, not a traceback."""
    raw = os.environ.get("GETM_TUI_QUEUE_TIMEOUT", "")
    if not raw:
        return BUSY_TIMEOUT_MS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise QueueError(f"environment GETM_TUI_QUEUE_TIMEOUT: expected a number of seconds > 0, got {raw!r}")
    return int(seconds * 1000)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g} s"


def db_path(data_dir: str) -> str:
    return os.path.join(data_dir, DB_NAME)


def ensure_data_dir(data_dir: str) -> None:
    """Create the data dir readable by its owner only (the queue holds signed URLs)."""
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    except OSError as e:
        raise QueueError(f"cannot create the data directory {data_dir}: {e.strerror or e}") from None
    try:
        os.chmod(data_dir, 0o700)
    except OSError:
        pass


# One lock per queue file for this process's writers (the supervisor's job threads each have a
# connection). SQLite makes a writer that finds the file locked sleep 1, 2, 5, 10... ms before it tries
# again; 16 small jobs a second or more, each writing several times, spent more time in those sleeps than
# in their downloads. Writers of one process now queue here and wake the moment the lock is free; other
# processes still meet SQLite's own lock and busy timeout.
_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_LOCK = threading.Lock()


def _writer_lock(path: str) -> threading.Lock:
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(path, threading.Lock())


def _reads_only(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in ("SELECT", "PRAGMA")


class Queue:
    """One connection to the queue database; cheap to open, one per process or thread."""

    def __init__(
        self,
        data_dir: str,
        timeout_ms: int | None = None,
        any_thread: bool = False,
        check: bool = False,
        recover: bool = False,
    ) -> None:
        """`timeout_ms`: how long to wait for a lock (default: default_timeout_ms()). `any_thread`: the
        connection may be handed between threads (one user at a time). `check`: fail with QueueCorrupt if
        `PRAGMA quick_check` finds damage (about 40 ms per 100,000 jobs). `recover`: check, and if the file
        is damaged back it up and rebuild it from what can be read (salvage.recover), with one warning."""
        ensure_data_dir(data_dir)
        self.data_dir = data_dir
        self.path = db_path(data_dir)
        self._writer = _writer_lock(self.path)
        # SQLite takes the busy timeout as a C int.
        self.timeout_ms = min(default_timeout_ms() if timeout_ms is None else max(0, timeout_ms), 2**31 - 1)
        self.recovered: Recovery | None = None  # what this open's recovery did, if it did one
        self._batching = False
        self._begun = False  # the batch's transaction has begun: its writer lock is held
        self._ino: int | None = None
        try:
            self.db = self._open(any_thread, check or recover)
        except QueueCorrupt as e:
            if not recover:
                raise
            from getm_tui.queue.salvage import recover as salvage

            self.recovered = salvage(self.path, e.ino, e.reason, self.timeout_ms / 1000)
            if self.recovered is not None:
                log.warning("%s", self.recovered.message())
            try:
                self.db = self._open(any_thread, True)
            except QueueCorrupt as again:
                raise QueueError(f"{again}, even after recovery; move it aside to start a new one") from None

    def _open(self, any_thread: bool, check: bool) -> sqlite3.Connection:
        """Connect and set up, holding queue.lock shared so that no recovery replaces the file meanwhile."""
        try:
            with queue_file_lock(self.data_dir, exclusive=False, timeout=self.timeout_ms / 1000):
                return self._connect(any_thread, check)
        except LockTimeout:
            raise QueueLocked(
                f"the queue {self.path} is being recovered by another process "
                f"(gave up waiting after {_seconds(self.timeout_ms)})"
            ) from None

    def _connect(self, any_thread: bool, check: bool) -> sqlite3.Connection:
        if check:
            self._check()
        old_umask = os.umask(0o077)
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(
                self.path,
                timeout=self.timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=not any_thread,
            )
            self._ino = inode_of(self.path)
            db.execute(f"PRAGMA busy_timeout = {self.timeout_ms}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise QueueError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            db.execute("PRAGMA synchronous = NORMAL")
            # Removed jobs (and their signed URLs) are overwritten, not left in free pages where a salvage
            # of a damaged file would find them and bring them back.
            db.execute("PRAGMA secure_delete = ON")
            db.executescript(SCHEMA)
        except (sqlite3.DatabaseError, QueueError) as e:
            if db is not None:
                db.close()
            if isinstance(e, QueueError):
                raise
            raise self._error(e) from None
        finally:
            os.umask(old_umask)
        return db

    def _check(self) -> None:
        """`PRAGMA quick_check` through a read-only connection: closing a read-write one, the last on the
        file, would checkpoint the WAL into the damaged file and delete it before anyone could back it up."""
        try:
            probe = sqlite3.connect(
                f"file:{quote(self.path)}?mode=ro", uri=True, timeout=self.timeout_ms / 1000
            )
        except sqlite3.Error:
            return  # no file yet: nothing to check
        try:
            self._ino = inode_of(self.path)
            probe.execute(f"PRAGMA busy_timeout = {self.timeout_ms}")
            verdict = probe.execute("PRAGMA quick_check(1)").fetchone()[0]
        except sqlite3.DatabaseError as e:
            error = self._error(e)
            if isinstance(error, (QueueCorrupt, QueueLocked)):
                raise error from None
            return  # cannot be opened read-only (a new, empty file): the read-write open will tell
        finally:
            probe.close()
        if verdict != "ok":
            raise QueueCorrupt(self.path, _first_line(verdict), self._ino)

    def _error(self, e: sqlite3.Error) -> QueueError:
        """The one line a user sees for a database error, as the exception that tells callers what it is."""
        if _is_busy(e):
            return QueueLocked(
                f"the queue {self.path} is locked by another process "
                f"(gave up waiting after {_seconds(self.timeout_ms)})"
            )
        if is_corruption(e):
            return QueueCorrupt(self.path, str(e), self._ino)
        return QueueError(f"queue {self.path}: {e}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _x(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            if _reads_only(sql) or self.db.in_transaction:
                return self.db.execute(sql, args)
            if self._batching:  # the batch's first write: its transaction starts here (see batch)
                self._begin()
                return self.db.execute(sql, args)
            with self._writer:
                return self.db.execute(sql, args)
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None

    def _begin(self) -> None:
        """Begin the batch's transaction, holding this process's writer lock until it ends."""
        self._writer.acquire()
        self._begun = True
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None

    def rollback(self) -> None:
        """End an open transaction; on a damaged file even ROLLBACK may fail, and the first error matters."""
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap way to notice new work."""
        return int(self._x("PRAGMA data_version").fetchone()[0])

    # -- adding and reading -----------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self, immediate: bool = False) -> Iterator[None]:
        """Run the writes of the block in one transaction: all of them or none, and one commit (one turn
        of the writer lock, one WAL append) where each statement would otherwise commit alone.

        The transaction begins at the block's first write, so a block that turns out only to read (the
        supervisor runs each turn of its loop as one) takes no lock; `immediate` begins it at once, so
        that what the block reads cannot change before it writes (a command checks, then acts). A batch
        inside a batch is part of it: the outer one commits or rolls back both.
        """
        if self._batching:
            yield
            return
        self._batching = True
        try:
            if immediate:
                self._begin()
            yield
            if self._begun:
                self.db.execute("COMMIT")
        except BaseException as e:
            # Any failure (a bad spec, Ctrl-C, a database error) must not leave the transaction open.
            self.rollback()
            if isinstance(e, sqlite3.DatabaseError):
                raise self._error(e) from None
            raise
        finally:
            self._batching = False
            if self._begun:
                self._begun = False
                self._writer.release()

    def add_many(self, specs: Iterable[JobSpec]) -> list[int]:
        """Insert jobs in one transaction: all of them or none."""
        now = time.time()
        ids: list[int] = []
        with self.batch():
            for s in specs:
                cur = self._x(
                    "INSERT INTO jobs (url, directory, name, priority, concurrency, checksums, info,"
                    " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    spec_values(s, now),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def get(self, job_id: int) -> Job:
        row = self._x(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(f"no job with id {job_id}")
        return _job(row)

    def jobs(self, states: Sequence[str] | None = None) -> list[Job]:
        return list(self.iter_jobs(states))

    def iter_jobs(self, states: Sequence[str] | None = None) -> Iterator[Job]:
        if states:
            marks = ",".join("?" * len(states))
            cur = self._x(f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY id", tuple(states))
        else:
            cur = self._x(f"SELECT {_COLUMNS} FROM jobs ORDER BY id")
        while True:
            try:
                rows = cur.fetchmany(500)
            except sqlite3.DatabaseError as e:
                raise self._error(e) from None
            if not rows:
                return
            for row in rows:
                yield _job(row)

    def changed_since(self, since: float) -> list[Job]:
        """Jobs whose row changed at or after `since` (progress saves don't count: they come live)."""
        return [
            _job(r) for r in self._x(f"SELECT {_COLUMNS} FROM jobs WHERE updated >= ? ORDER BY id", (since,))
        ]

    def fingerprint(self) -> Fingerprint:
        """Changes when a job is added, removed or changes state or settings; not on progress saves."""
        row = self._x("SELECT count(*), coalesce(max(id), 0), coalesce(max(updated), 0) FROM jobs").fetchone()
        return Fingerprint(int(row[0]), int(row[1]), float(row[2]))

    def extent(self) -> Extent:
        top_id, low, high = self._x("SELECT max(id), min(priority), max(priority) FROM jobs").fetchone()
        return Extent(top_id, low, high)

    def ids(self) -> set[int]:
        return {r[0] for r in self._x("SELECT id FROM jobs")}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = dict.fromkeys(STATES, 0)
        for state, n in self._x("SELECT state, count(*) FROM jobs GROUP BY state"):
            out[state] = n
        return out

    def next_runnable(self, limit: int, exclude: Collection[int] = ()) -> list[Job]:
        """Queued jobs by priority (higher first), then age."""
        rows = self._x(
            f"SELECT {_COLUMNS} FROM jobs WHERE state = 'queued' ORDER BY priority DESC, id LIMIT ?",
            (limit + len(exclude),),
        ).fetchall()
        return [j for j in map(_job, rows) if j.id not in exclude][:limit]

    def check_ids(self, ids: Sequence[int]) -> list[Job]:
        """The jobs, or UnknownJob naming every id that does not exist."""
        found = {j.id: j for j in (self._maybe(i) for i in ids) if j is not None}
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise UnknownJob(f"no job with id {', '.join(missing)}")
        return [found[i] for i in ids]

    def _maybe(self, job_id: int) -> Job | None:
        try:
            return self.get(job_id)
        except UnknownJob:
            return None

    def events(self, job_id: int) -> list[Event]:
        return [
            Event(*r)
            for r in self._x("SELECT at, kind, message FROM events WHERE job_id = ? ORDER BY at", (job_id,))
        ]

    # -- changing ---------------------------------------------------------------------------------

    def update(self, job_id: int, **values: Any) -> None:
        """Set columns of a job's row as they are (no check of its state): the backend's own tool, for the
        methods below and for tests; front ends go through those methods."""
        if not values:
            return
        values["updated"] = time.time()
        for key in ("integrity", "info", "checksums"):
            if key in values and not isinstance(values[key], str) and values[key] is not None:
                values[key] = json.dumps(values[key])
        sets = ", ".join(f"{k} = ?" for k in values)
        self._x(f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id))

    def transition(self, job_id: int, to: str, from_states: Collection[str], **values: Any) -> bool:
        """Move a job to `to` only if it is in one of `from_states`; True if it moved."""
        values["updated"] = time.time()
        values["state"] = to
        for key in ("integrity", "info"):
            if key in values and not isinstance(values[key], str) and values[key] is not None:
                values[key] = json.dumps(values[key])
        sets = ", ".join(f"{k} = ?" for k in values)
        marks = ",".join("?" * len(from_states))
        cur = self._x(
            f"UPDATE jobs SET {sets} WHERE id = ? AND state IN ({marks})",
            (*values.values(), job_id, *from_states),
        )
        return cur.rowcount == 1

    def log_event(self, job_id: int, kind: str, message: str) -> None:
        self._x(
            "INSERT INTO events (job_id, at, kind, message) VALUES (?, ?, ?, ?)",
            (job_id, time.time(), kind, message),
        )

    def delete(self, job_id: int) -> None:
        self._x("DELETE FROM jobs WHERE id = ?", (job_id,))
        self._x("DELETE FROM events WHERE job_id = ?", (job_id,))

    # -- what users do ----------------------------------------------------------------------------

    def apply(self, transition: Transition, job_ids: Sequence[int]) -> list[Outcome]:
        def move(job_id: int) -> bool:
            return self.transition(job_id, transition.target, transition.sources, **transition.resets)

        return apply_transition(self, move, transition, job_ids)

    def remove(
        self, job_ids: Sequence[int], delete_file: bool, running: Collection[int] | None = None
    ) -> list[Removal]:
        out: list[Removal] = []
        with self.batch(immediate=True):
            # Asked inside the write transaction: a supervisor that starts later cannot make a job active
            # before this commits, so an active job seen here without one is what a dead one left.
            supervised = running is None and running_supervisor(self.data_dir) is not None
            for job in self.check_ids(list(dict.fromkeys(job_ids))):
                if supervisor_runs(job, running, supervised):
                    # The supervisor owns the transfer: it stops it, removes its files and deletes the row.
                    info = {**job.info, "delete_file": bool(delete_file)}
                    self.update(job.id, state=HANDED_OVER, info=info)
                    out.append(Removal(job.id, True))
                else:
                    self.delete(job.id)
                    out.append(Removal(job.id, False, files_of_removal(job, delete_file)))
        return out

    def set_priority(self, job_id: int, priority: int) -> None:
        self.update(job_id, priority=int(priority))

    def set_concurrency(self, job_id: int, concurrency: int) -> int:
        n = clamp_concurrency(int(concurrency))
        self.update(job_id, concurrency=n)
        return n

    # -- what the supervisor does -----------------------------------------------------------------

    def claim(self, job_id: int) -> bool:
        return self.transition(job_id, JobState.ACTIVE, (JobState.QUEUED,), started=time.time(), error=None)

    def unclaim(self, job_id: int) -> bool:
        return self.transition(job_id, JobState.QUEUED, (JobState.ACTIVE,))

    def claim_runnable(self, limit: int, exclude: Collection[int] = ()) -> list[Job]:
        """One supervisor runs a SQLite queue: what it asks for is what it gets (no one else claims)."""
        with self.batch():
            return [job for job in self.next_runnable(limit, exclude) if self.claim(job.id)]

    def join_fleet(self, data_dir: str, lease_timeout: float) -> bool:
        return False  # one supervisor per file (SupervisorLock): no leases to hold

    def heartbeat(self, bytes_done: int = 0, jobs_done: int = 0) -> set[int]:
        return set()

    def holds(self, job_id: int) -> bool:
        return True

    def runners(self) -> list[RunnerInfo]:
        return []

    def leave_fleet(self) -> None:
        pass

    def listen(self) -> None:
        return None  # commands on a queue file reach its supervisor through its socket

    def reconnect(self) -> None:
        pass  # a file does not go away as a server does

    def running_rows(self, job_ids: Collection[int]) -> dict[int, RunningRow]:
        if not job_ids:
            return {}
        ids = tuple(job_ids)
        marks = ",".join("?" * len(ids))
        rows = self._x(f"SELECT id, state, concurrency FROM jobs WHERE id IN ({marks})", ids).fetchall()
        return {r[0]: RunningRow(_STATE_OF.get(r[1], r[1]), r[2]) for r in rows}

    def record_probe(self, job_id: int, path: str, size: int | None, info: dict[str, Any]) -> None:
        self.update(job_id, path=path, size=size, info=info)

    def finish(self, job_id: int, result: Finished) -> None:
        with self.batch():
            self.update(
                job_id,
                state=JobState.DONE,
                path=result.path,
                size=result.size,
                bytes_done=result.size,
                verdict=result.verdict,
                integrity=result.integrity,
                finished=time.time(),
                error=None,
                resume=None,
            )
            self.log_event(job_id, "done", f"saved {result.path} ({result.verdict}, crc32c {result.crc32c})")

    def fail(self, job_id: int, error: str, mismatch: bool, kept: bool) -> None:
        now = time.time()
        with self.batch():
            self._x(
                "UPDATE jobs SET state = ?, error = ?, attempts = attempts + 1, finished = ?, updated = ?,"
                " verdict = CASE WHEN ? THEN 'mismatch' ELSE verdict END,"
                " bytes_done = CASE WHEN ? THEN bytes_done ELSE 0 END WHERE id = ?",
                (JobState.FAILED.value, error, now, now, mismatch, kept, job_id),
            )
            self.log_event(job_id, "error", error)

    def requeue_active(self) -> list[int]:
        """Jobs a dead supervisor left active go back to the queue (the caller holds the supervisor lock)."""
        ids = [r[0] for r in self._x("SELECT id FROM jobs WHERE state = 'active'")]
        if ids:
            self._x("UPDATE jobs SET state = 'queued', updated = ? WHERE state = 'active'", (time.time(),))
        return ids

    # -- resume records ---------------------------------------------------------------------------

    def load_resume(self, job_id: int) -> dict[str, Any] | None:
        row = self._x("SELECT resume FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return (_loads(row[0], {}) or None) if row else None  # garbled: start over (the engine re-verifies)

    def save_resume(self, job_id: int, record: dict[str, Any]) -> None:
        """Keep a job's resume record (written by its host's engine), and the bytes it says are done."""
        done = sum(int(p[2]) for p in record.get("parts", []))
        text = json.dumps(record, separators=(",", ":"))
        self._x("UPDATE jobs SET resume = ?, bytes_done = ? WHERE id = ?", (text, done, job_id))


def _first_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip() and not line.startswith("***")]
    return (lines[0] if lines else str(text)).strip()[:200]
