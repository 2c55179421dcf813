"""The persistent queue: jobs, their resume records and error history, in SQLite (WAL).

Every process opens its own connection: the CLI verbs read and write jobs directly (no supervisor is
needed to add or list), the supervisor polls `PRAGMA data_version` to see others' commits within a
fraction of a second, and a job's resume record lives in its row so a SIGKILL of everything loses at most
what was fetched since the last save. State machine:

    queued -> active -> done | failed        paused <-> queued        failed -> queued (retry)
    active -> queued (supervisor stopped)    any -> canceled -> (row deleted by the supervisor)

A damaged file is found when it is opened with `check` (`PRAGMA quick_check`) or when a statement fails;
opened with `recover`, it is backed up and rebuilt from every job that can still be read (salvage.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from getm_tui.engine.urls import name_from_url, redact
from getm_tui.queue.errors import QueueCorrupt, QueueError, QueueLocked, UnknownJob
from getm_tui.queue.lock import LockTimeout, queue_file_lock
from getm_tui.queue.schema import DB_NAME, SCHEMA, inode_of
from getm_tui.queue.states import STATES

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


def _loads(text: Any, default: Any) -> Any:
    """A JSON column; what a damaged file garbled reads as the default rather than failing the command."""
    if not text or not isinstance(text, str):
        return default
    try:
        value = json.loads(text)
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default


@dataclass
class Job:
    id: int
    url: str
    directory: str
    name: str | None
    path: str | None
    state: str
    priority: int
    concurrency: int | None
    size: int | None
    bytes_done: int
    checksums: list[str]
    integrity: list[dict[str, Any]] = field(default_factory=list)
    verdict: str | None = None
    attempts: int = 0
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    started: float | None = None
    finished: float | None = None

    @property
    def display_name(self) -> str:
        if self.path:
            return os.path.basename(self.path)
        if self.name:
            return self.name
        return _url_name(self.url) or redact(self.url)

    def public(self) -> dict[str, Any]:
        """The job as `ls --json` shows it: no secrets (the URL is redacted), no resume record."""
        return {
            "id": self.id,
            "name": self.display_name,
            "url": redact(self.url),
            "path": self.path or (os.path.join(self.directory, self.name) if self.name else None),
            "state": self.state,
            "priority": self.priority,
            "concurrency": self.concurrency,
            "size": self.size,
            "bytes_done": self.bytes_done,
            "checksums": self.checksums,
            "integrity": self.integrity,
            "verdict": self.verdict,
            "attempts": self.attempts,
            "error": self.error,
            "insecure": bool(self.info.get("insecure")),  # added with --insecure: no TLS verification
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }


_COLUMNS = (
    "id, url, directory, name, path, state, priority, concurrency, size, bytes_done, checksums, integrity, "
    "verdict, attempts, error, info, created, updated, started, finished"
)


def _job(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    (jid, url, directory, name, path, state, priority, conc, size, done, checks, integ, verdict, tries, err,
     info, created, updated, started, finished) = row  # fmt: skip
    # Empty lists skip json.loads: `ls` builds 100,000 of these in well under a second.
    return Job(
        jid, url, directory, name, path, state, priority, conc, size, done,
        _loads(checks, []) if checks and checks != "[]" else [],
        _loads(integ, []) if integ and integ != "[]" else [], verdict, tries, err,
        _loads(info, {}) if info and info != "{}" else {},
        created, updated, started, finished,
    )  # fmt: skip


_FAST_SCHEMES = ("http", "https", "file")


def _url_name(url: str) -> str:
    """`name_from_url` without urlsplit's cost, for the scheme://... URLs `validate` lets in."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _FAST_SCHEMES:
        return name_from_url(url)
    # As urlsplit does: the fragment starts at the first '#', the query at the first '?' before it, and the
    # path at the first '/' of what is left (the host part cannot hold any of the three).
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    if "/" not in rest:
        return ""
    return unquote(rest.rsplit("/", 1)[1])


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
        self.recovered: Any = None  # the salvage.Recovery this open did, if any
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

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _x(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            if _reads_only(sql) or self.db.in_transaction:
                return self.db.execute(sql, args)
            if self._batching:  # the batch's first write: its transaction starts here (see batch)
                self._writer.acquire()
                self._begun = True
                self.db.execute("BEGIN IMMEDIATE")
                return self.db.execute(sql, args)
            with self._writer:
                return self.db.execute(sql, args)
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
    def batch(self) -> Iterator[None]:
        """Run the writes of the block in one transaction: all of them or none, and one commit (one turn
        of the writer lock, one WAL append) where each statement would otherwise commit alone.

        The transaction begins at the block's first write, so a block that turns out only to read (the
        supervisor runs each turn of its loop as one) takes no lock. A batch inside a batch is part of it:
        the outer one commits or rolls back both.
        """
        if self._batching:
            yield
            return
        self._batching = True
        try:
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

    def add_many(self, specs: Iterable[dict[str, Any]]) -> list[int]:
        """Insert jobs in one transaction: all of them or none."""
        now = time.time()
        ids: list[int] = []
        with self.batch():
            for s in specs:
                cur = self._x(
                    "INSERT INTO jobs (url, directory, name, priority, concurrency, checksums, info,"
                    " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        s["url"],
                        s["directory"],
                        s.get("name"),
                        int(s.get("priority") or 0),
                        s.get("concurrency"),
                        json.dumps(list(s.get("checksums") or [])),
                        json.dumps(s["info"]) if s.get("info") else None,
                        now,
                        now,
                    ),
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

    def fingerprint(self) -> tuple[int, int, float]:
        """Changes when a job is added, removed or changes state or settings; not on progress saves."""
        row = self._x("SELECT count(*), coalesce(max(id), 0), coalesce(max(updated), 0) FROM jobs").fetchone()
        return (int(row[0]), int(row[1]), float(row[2]))

    def ids(self) -> set[int]:
        return {r[0] for r in self._x("SELECT id FROM jobs")}

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self._x("SELECT state, count(*) FROM jobs GROUP BY state"):
            out[state] = n
        return out

    def next_runnable(self, limit: int, exclude: Sequence[int] = ()) -> list[Job]:
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

    def events(self, job_id: int) -> list[tuple[float, str, str]]:
        return [
            tuple(r)
            for r in self._x("SELECT at, kind, message FROM events WHERE job_id = ? ORDER BY at", (job_id,))
        ]

    # -- changing ---------------------------------------------------------------------------------

    def update(self, job_id: int, **values: Any) -> None:
        if not values:
            return
        values["updated"] = time.time()
        for key in ("integrity", "info", "checksums"):
            if key in values and not isinstance(values[key], str) and values[key] is not None:
                values[key] = json.dumps(values[key])
        sets = ", ".join(f"{k} = ?" for k in values)
        self._x(f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id))

    def transition(self, job_id: int, to: str, from_states: Sequence[str], **values: Any) -> bool:
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
