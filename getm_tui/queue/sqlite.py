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
import itertools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from getm_tui.queue.errors import QueueCorrupt, QueueError, QueueLocked, UnknownJob
from getm_tui.queue.lock import LockTimeout, queue_file_lock
from getm_tui.queue.migrations import migrate
from getm_tui.queue.records import (
    NAMED_BY,
    Event,
    Extent,
    Fingerprint,
    Job,
    JobSpec,
    Listed,
    view_name_of,
)
from getm_tui.queue.rows import JOB_COLUMNS, LISTED_COLUMNS, job_from_row
from getm_tui.queue.schema import DB_NAME, SCHEMA, inode_of
from getm_tui.queue.sqlite_add import (
    ADD_BLOCK,
    ADD_CACHE_KIB,
    CACHE_KIB,
    INSERT_NAME,
    RENAME,
    BulkInsert,
    DeferredIndexes,
    JobInsert,
    insert_rows,
)
from getm_tui.queue.sqlite_check import LaterCheck, open_read_only, quick_check
from getm_tui.queue.sqlite_file import (
    db_path,
    default_timeout_ms,
    ensure_data_dir,
    is_busy,
    is_corruption,
    reads_only,
    seconds,
    writer_lock,
)
from getm_tui.queue.sqlite_runs import SupervisorWrites
from getm_tui.queue.sqlite_steer import UserActions
from getm_tui.queue.sqlite_views import WindowSQL, count_sql
from getm_tui.queue.states import (
    STATES,
)
from getm_tui.queue.views import View

if TYPE_CHECKING:
    from types import TracebackType

    from getm_tui.queue.salvage import Recovery

__all__ = ["DB_NAME", "STATES", "Job", "Queue", "QueueCorrupt", "QueueError", "QueueLocked", "UnknownJob"]

log = logging.getLogger(__name__)


class Queue(UserActions, SupervisorWrites):
    """One connection to the queue database; cheap to open, one per process or thread."""

    def __init__(
        self,
        data_dir: str,
        timeout_ms: int | None = None,
        any_thread: bool = False,
        check: bool | Literal["later"] = False,
        recover: bool = False,
    ) -> None:
        """`timeout_ms`: how long to wait for a lock (default: default_timeout_ms()). `any_thread`: the
        connection may be handed between threads (one user at a time). `check`: fail with QueueCorrupt if
        `PRAGMA quick_check` finds damage (it reads the whole file). `recover`: check, and if the file
        is damaged back it up and rebuild it from what can be read (salvage.recover), with one warning.

        `check="later"` (with or without `recover`): a reader's open. Damage that stops the open itself
        is met (and recovered) at once, but quick_check runs in a thread beside what the caller reads, and
        `close()` waits for its verdict: QueueCorrupt, after closing, when it found damage; recovering
        is then the caller's (a file must be closed by everyone to be rebuilt). The verdict is part of
        `close()` so that no reader can forget it and take a silently short read for a whole one."""
        ensure_data_dir(data_dir)
        self.data_dir = data_dir
        self.path = db_path(data_dir)
        self._writer = writer_lock(self.path)
        # SQLite takes the busy timeout as a C int.
        self.timeout_ms = min(default_timeout_ms() if timeout_ms is None else max(0, timeout_ms), 2**31 - 1)
        self.recovered: Recovery | None = None  # what this open's recovery did, if it did one
        self._batching = False
        self._begun = False  # the batch's transaction has begun: its writer lock is held
        self._ino: int | None = None
        self._later: LaterCheck | None = None
        self._held = contextlib.ExitStack()  # queue.lock, when _open is asked to keep it
        later = check == "later"
        try:
            self.db = self._open(any_thread, (check is True or recover) and not later, hold=later)
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
            return  # the rebuilt file was checked at open
        if later:
            self._later = LaterCheck(self.path, self.timeout_ms, self._error, self._held)

    def _open(self, any_thread: bool, check: bool, hold: bool = False) -> sqlite3.Connection:
        """Connect and set up, holding queue.lock shared so that no recovery replaces the file meanwhile,
        and this process's writer lock: the first connection to a file rebuilds its WAL index and the set-up
        may write, and a thread opening beside a writer would otherwise meet SQLite's lock (and, with no
        busy timeout, fail at once). `hold`: keep queue.lock until close()."""
        with contextlib.ExitStack() as shared:
            try:
                shared.enter_context(
                    queue_file_lock(self.data_dir, exclusive=False, timeout=self.timeout_ms / 1000)
                )
            except LockTimeout:
                raise QueueLocked(
                    f"the queue {self.path} is being recovered by another process "
                    f"(gave up waiting after {seconds(self.timeout_ms)})"
                ) from None
            with self._writer:
                db = self._connect(any_thread, check)
            if hold:
                self._held = shared.pop_all()
            return db

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
            migrate(db)
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
        """`PRAGMA quick_check` before the read-write open (sqlite_check.py says why read-only)."""
        probe = open_read_only(self.path, self.timeout_ms)
        if probe is None:
            return  # no file yet: nothing to check
        try:
            self._ino = inode_of(self.path)
            damage = quick_check(probe, self._error)
        finally:
            probe.close()
        if damage is not None:
            raise QueueCorrupt(self.path, damage, self._ino)

    def _error(self, e: sqlite3.Error) -> QueueError:
        """The one line a user sees for a database error, as the exception that tells callers what it is."""
        if is_busy(e):
            return QueueLocked(
                f"the queue {self.path} is locked by another process "
                f"(gave up waiting after {seconds(self.timeout_ms)})"
            )
        if is_corruption(e):
            return QueueCorrupt(self.path, str(e), self._ino)
        return QueueError(f"queue {self.path}: {e}")

    def close(self) -> None:
        """Close under this process's writer lock: the last connection to close checkpoints the WAL into
        the file and deletes it, holding SQLite's lock against any thread opening meanwhile. Opened with
        `check="later"`: wait for the check first, and raise QueueCorrupt when it found damage."""
        later, self._later = self._later, None
        if later is None:
            self._close_db()
        elif (damage := later.end(self._close_db)) is not None:
            raise QueueCorrupt(self.path, damage, self._ino)

    def _close_db(self) -> None:
        if self._begun:  # closed inside its own batch: this thread already holds the lock
            self.db.close()
            return
        with self._writer:
            self.db.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if error is not None and self._later is not None:  # leaving on an error: no verdict is awaited
            later, self._later = self._later, None
            later.end(self._close_db, wait=False)
            return
        self.close()

    def _x(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            if reads_only(sql) or self.db.in_transaction:
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
        """Insert jobs in one transaction: all of them or none. `specs` is read as it goes (an `add -i` of a
        million URLs holds one block of them at a time); the write lock is held throughout, so the ids of
        one block follow each other from the last one inserted."""
        now = time.time()
        ids: list[int] = []
        it = iter(specs)
        with self.batch(immediate=True):
            # A big add touches every page of the name index: a cache that holds it saves re-reading them.
            self.db.execute(f"PRAGMA cache_size = {ADD_CACHE_KIB}")
            indexes = DeferredIndexes(self.db)
            try:
                jobs, named = JobInsert(), BulkInsert(INSERT_NAME)
                while block := list(itertools.islice(it, ADD_BLOCK)):
                    indexes.consider(len(ids))
                    urls, rests, names = insert_rows(block, now)
                    self._bulk(jobs.run, urls, rests)
                    last = int(self.db.execute("SELECT last_insert_rowid()").fetchone()[0])
                    block_ids = range(last - len(block) + 1, last + 1)
                    pairs: list[Any] = [None] * (2 * len(block))
                    pairs[0::2], pairs[1::2] = block_ids, names
                    self._bulk(named.run, pairs)
                    ids.extend(block_ids)
                indexes.rebuild()
            finally:
                self.db.execute(f"PRAGMA cache_size = {CACHE_KIB}")
        return ids

    def _bulk(self, insert: Callable[..., None], *rows: Sequence[Any]) -> None:
        """Many rows, inside the batch's transaction."""
        try:
            insert(self.db, *rows)
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None

    def get(self, job_id: int) -> Job:
        row = self._x(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(f"no job with id {job_id}")
        return job_from_row(row)

    def jobs(self, states: Sequence[str] | None = None) -> list[Job]:
        return list(self.iter_jobs(states))

    def iter_jobs(self, states: Sequence[str] | None = None) -> Iterator[Job]:
        return map(job_from_row, self._rows(JOB_COLUMNS, states))

    def listing(self, states: Sequence[str] | None = None) -> Iterator[Listed]:
        return self._rows(LISTED_COLUMNS, states)

    def _rows(self, columns: str, states: Sequence[str] | None) -> Iterator[Any]:
        """The columns of the jobs (of those states), by id, read a few hundred rows at a time."""
        if states:
            marks = ",".join("?" * len(states))
            cur = self._x(f"SELECT {columns} FROM jobs WHERE state IN ({marks}) ORDER BY id", tuple(states))
        else:
            cur = self._x(f"SELECT {columns} FROM jobs ORDER BY id")
        while True:
            try:
                rows = cur.fetchmany(500)
            except sqlite3.DatabaseError as e:
                raise self._error(e) from None
            if not rows:
                return
            yield from rows

    def changed_since(self, since: float) -> list[Job]:
        """Jobs whose row changed at or after `since` (progress saves don't count: they come live)."""
        return [
            job_from_row(r)
            for r in self._x(f"SELECT {JOB_COLUMNS} FROM jobs WHERE updated >= ? ORDER BY id", (since,))
        ]

    def fingerprint(self) -> Fingerprint:
        """Changes when a job is added, removed or changes state or settings; not on progress saves."""
        row = self._x("SELECT count(*), coalesce(max(id), 0), coalesce(max(updated), 0) FROM jobs").fetchone()
        return Fingerprint(int(row[0]), int(row[1]), float(row[2]))

    def extent(self) -> Extent:
        # Each a lookup at one end of an index (the priority order's key is -priority), not a scan.
        top_id, low, high = self._x(
            "SELECT (SELECT max(id) FROM jobs), (SELECT -max(-priority) FROM jobs),"
            " (SELECT -min(-priority) FROM jobs)"
        ).fetchone()
        return Extent(top_id, low, high)

    def ids(self) -> set[int]:
        return {r[0] for r in self._x("SELECT id FROM jobs")}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = dict.fromkeys(STATES, 0)
        for state, n in self._x("SELECT state, count(*) FROM jobs GROUP BY state"):
            out[state] = n
        return out

    def window(self, view: View, limit: int, offset: int = 0, after: int | None = None) -> list[Job]:
        sql = WindowSQL(view, JOB_COLUMNS)
        limit, offset = max(0, limit), max(0, offset)
        if after is None:
            return [job_from_row(r) for r in self._x(sql.first, (*sql.args, limit, offset))]
        found = self._x(sql.anchor, (after,)).fetchone()
        if found is None:
            raise UnknownJob(f"no job with id {after}")
        if sql.key is None:
            return [job_from_row(r) for r in self._x(sql.ties, (*sql.args, after, limit, offset))]
        rows = self._x(sql.ties, (*sql.args, found[0], after, limit + offset, 0)).fetchall()
        if len(rows) < limit + offset:
            rows += self._x(sql.after, (*sql.args, found[0], limit + offset - len(rows), 0)).fetchall()
        return [job_from_row(r) for r in rows[offset : offset + limit]]

    def count(self, view: View) -> int:
        sql, args = count_sql(view)
        return int(self._x(sql, args).fetchone()[0])

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
        if not values.keys() & NAMED_BY:
            self._x(f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id))
            return
        # The job's name as views sort and filter by it, after its path, name or URL were set: written
        # only when it changed (a probe and a finish set the path a job had), sparing the names index. One
        # transaction, so that the returned row is read before any other write of this process.
        with self.batch():
            sql = f"UPDATE jobs SET {sets} WHERE id = ? RETURNING url, name, path"
            for row in self._x(sql, (*values.values(), job_id)).fetchall():
                self._x(RENAME, (job_id, view_name_of(*row)))

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
        with self.batch():
            self._x("DELETE FROM jobs WHERE id = ?", (job_id,))
            self._x("DELETE FROM names WHERE id = ?", (job_id,))
            self._x("DELETE FROM events WHERE job_id = ?", (job_id,))
