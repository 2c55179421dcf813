"""A damaged queue file: back it up, keep every job that can still be read, and start afresh.

Why: the queue holds work people queued, maybe thousands of signed URLs they cannot easily find again, so
a damaged file must neither stop every command nor be thrown away. Recovery:

1. Only one process recovers, and only when no one has the file open: it holds `queue.lock` exclusive (every
   process opens the queue holding it shared), no other process may run a supervisor, and no other process
   may hold SQLite's lock on the `-shm` file (every open connection does). A connection left open on the
   old file would, when it closed, checkpoint into it and delete the new file's WAL by name.
2. The damaged file and its `-wal` / `-shm` are copied to `queue.sqlite3.corrupt-YYYYmmdd-HHMMSS` (0600,
   fsynced) before anything else happens; the copy is left exactly as it was.
3. Rows are read through SQLite from a scratch copy, by rowid ranges that are split where they fail, so
   one bad page costs only the rows on it. SQLite can also miss rows without any error (a seek through
   garbled keys), so every row it did not return is looked for on the raw pages (pagescan.py), which also
   reads a file whose header or schema is gone. Every value is checked: a row without a valid URL,
   directory, state and times is lost, a garbled optional field falls back to its default. Which ids
   existed comes from the (state, priority, id) index, so the warning can name the lost ones.
4. A new file is built beside the old one with the kept jobs (active ones queued again: nothing runs them
   now) and their events; the id sequence continues past every id seen, so a lost job's id is never
   reused. The old `-wal` and `-shm` are removed, then the new file is renamed over the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from getm_tui.queue.errors import QueueError, QueueLocked
from getm_tui.queue.lock import LockTimeout, queue_file_lock, running_supervisor
from getm_tui.queue.schema import SCHEMA, inode_of
from getm_tui.queue.states import STATES

_DMS_BYTE = 128  # SQLite's "dead man switch" in -shm: every connection holds a read lock on it
_SPLIT_BELOW = 16  # a failing rowid range this small is read one rowid at a time
_SIDE_FILES = ("-wal", "-shm")
_JOB_KEYS = ("url", "directory", "state", "created", "updated")


@dataclass
class Recovery:
    """What a recovery did, for the one warning line."""

    path: str
    backup: str
    reason: str
    kept: int
    lost: list[int]
    exact: bool  # `lost` is every lost id (the id index was read whole), not only those known of
    requeued: int

    def message(self) -> str:
        head = f"the queue {self.path} was damaged ({self.reason})"
        saved = f"the damaged file is saved as {self.backup}"
        if not self.kept:
            known = f" (lost {_jobs(len(self.lost))}: id {_ranges(self.lost)})" if self.lost else ""
            return f"{head} and no job in it could be read{known}: starting an empty queue; {saved}"
        kept = f"kept {_jobs(self.kept)}"
        if self.requeued:
            kept += f" ({self.requeued} active: queued again)"
        at_least = "" if self.exact else "at least "
        if not self.lost:
            lost = "none lost" if self.exact else "none known lost"
        else:
            lost = f"lost {at_least}{_jobs(len(self.lost))} that could not be read (id {_ranges(self.lost)})"
        return f"{head}: {kept}, {lost}; {saved}"


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


def _ranges(ids: list[int], most: int = 6) -> str:
    """1, 4-9, 12: ids as runs, the first few of them."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:most])
    return text + (", ..." if len(runs) > most else "")


def recover(path: str, seen_ino: int | None, reason: str, wait: float) -> Recovery | None:
    """Back up the damaged queue file at `path` and rebuild it from what can be read.

    `seen_ino` is the file the caller found damaged: if another process has replaced it since, there is
    nothing left to do and this returns None. QueueError (one line) if it must not or cannot recover now.
    """
    data_dir = os.path.dirname(path)
    damaged = f"the queue {path} is damaged ({reason})"
    try:
        with queue_file_lock(data_dir, exclusive=True, timeout=wait):
            if inode_of(path) != seen_ino:
                return None  # recovered by someone else while we waited
            pid = running_supervisor(data_dir)
            if pid is not None and pid != os.getpid():
                raise QueueError(
                    f"{damaged}; getm-tui process {pid} runs it: stop that one, then any getm-tui command "
                    "backs the file up and keeps the jobs that can still be read"
                )
            with _nobody_connected(path, damaged):
                return _rebuild(path, reason)
    except LockTimeout:
        raise QueueLocked(
            f"{damaged}; another process is recovering or opening it (gave up waiting after {wait:g} s)"
        ) from None


@contextlib.contextmanager
def _nobody_connected(path: str, damaged: str) -> Iterator[None]:
    """Hold SQLite's dead-man-switch byte of `-shm` exclusively: it fails while another process has a
    connection open, and keeps any from opening while we work. (Only in a process with no connection of
    its own to this file: closing our descriptor drops this process's POSIX locks on it.)"""
    try:
        fd = os.open(path + "-shm", os.O_RDWR)
    except FileNotFoundError:
        yield  # no -shm: no connection in WAL mode is open
        return
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _DMS_BYTE, os.SEEK_SET)
        except OSError:
            raise QueueError(
                f"{damaged}; another process has it open: close it (the app, a running getm-tui), then "
                "any getm-tui command backs the file up and keeps the jobs that can still be read"
            ) from None
        yield
    finally:
        os.close(fd)


def _rebuild(path: str, reason: str) -> Recovery:
    data_dir = os.path.dirname(path)
    backup = _backup(path)
    scratch = tempfile.mkdtemp(prefix=".salvage-", dir=data_dir)
    try:
        found = _Salvage(backup, scratch).run()
        fresh = os.path.join(scratch, "rebuilt.sqlite3")
        requeued = _build(fresh, found, backup)
        _fsync(fresh)
        for suffix in _SIDE_FILES:  # first: the new file must never meet the old WAL
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
        os.replace(fresh, path)
        _fsync(data_dir)
    except OSError as e:
        raise QueueError(
            f"the queue {path} is damaged ({reason}) and could not be rebuilt: {e.strerror or e} "
            f"(the damaged file is saved as {backup})"
        ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Recovery(path, backup, reason, len(found.jobs), found.lost(), found.ids_complete, requeued)


def _backup(path: str) -> str:
    """Copy the file and its -wal / -shm aside, private and on disk, before anything changes them."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = f"{path}.corrupt-{stamp}"
    n = 1
    while any(os.path.exists(backup + s) for s in ("", *_SIDE_FILES)):
        n += 1
        backup = f"{path}.corrupt-{stamp}-{n}"
    try:
        for suffix in ("", *_SIDE_FILES):
            if suffix and not os.path.exists(path + suffix):
                continue
            with open(path + suffix, "rb") as src:
                fd = os.open(backup + suffix, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                    dst.flush()
                    os.fsync(dst.fileno())
        _fsync(os.path.dirname(path))
    except OSError as e:
        raise QueueError(
            f"the queue {path} is damaged and could not be backed up to {backup}: {e.strerror or e}; "
            "nothing was changed"
        ) from None
    return backup


@dataclass
class _Salvage:
    """Reads the jobs and events of a backup: through SQLite first, then from the raw pages."""

    backup: str
    scratch: str
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    seen_ids: set[int] = field(default_factory=set)  # job ids known to have existed
    ids_complete: bool = False  # seen_ids is every job id (SQLite read the whole id index)
    top_id: int = 0

    def run(self) -> _Salvage:
        copy = os.path.join(self.scratch, "damaged.sqlite3")
        for suffix in ("", "-wal"):  # SQLite may write to what it opens: never to the backup itself
            if os.path.exists(self.backup + suffix):
                shutil.copyfile(self.backup + suffix, copy + suffix)
        db = sqlite3.connect(copy, isolation_level=None)
        try:
            self._read(db)
        finally:
            db.close()
        self.top_id = max([self.top_id, *self.seen_ids, *self.jobs])
        self.events = {k: v for k, v in self.events.items() if v[0] in self.jobs}
        return self

    def lost(self) -> list[int]:
        return sorted(self.seen_ids - set(self.jobs))

    def _keep(self, rowid: int, row: dict[str, Any]) -> None:
        job = _job(rowid, row)
        if job is None:
            self.seen_ids.add(rowid)  # it existed, but cannot be trusted: lost unless a good copy turns up
        else:
            self.jobs[rowid] = job

    def _read(self, db: sqlite3.Connection) -> None:
        _quietly(db, "PRAGMA cell_size_check = ON")
        self.top_id = _scalar(db, "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'") or 0
        self._index_ids(db)
        for rowid, row in _sql_rows(db, "jobs", self.top_id).items():
            self._keep(rowid, row)
        for rowid, row in _sql_rows(db, "events", 0).items():
            if (event := _event(row)) is not None:
                self.events[rowid] = event
        # SQLite can miss rows without an error (a seek through garbled keys finds nothing), so every row
        # it did not return is looked for on the raw pages. Those are live cells of pages in use: deleted
        # rows are not (their cells leave the page's cell list, their freed pages are on the freelist, and
        # secure_delete zeroes both), so this does not bring removed jobs back.
        raw = _raw_rows(self.backup)
        for rowid, row in raw["jobs"].items():
            if rowid not in self.jobs:
                self._keep(rowid, row)
        for rowid, row in raw["events"].items():
            if rowid not in self.events and (event := _event(row)) is not None:
                self.events[rowid] = event
        if not raw["index_ids"] <= self.seen_ids:
            self.ids_complete = False
        self.seen_ids |= raw["index_ids"]
        self.top_id = max([self.top_id, raw["seq"], *raw["jobs"]])

    def _index_ids(self, db: sqlite3.Connection) -> None:
        """Every job id, from the (state, priority, id) index: which jobs existed, even where their rows
        cannot be read, so the warning can say exactly what was lost."""
        try:
            cur = db.execute("SELECT id FROM jobs INDEXED BY jobs_runnable")
            for (job_id,) in iter(cur.fetchone, None):
                if isinstance(job_id, int):
                    self.seen_ids.add(job_id)
        except sqlite3.Error:
            return
        self.ids_complete = True


def _sql_rows(db: sqlite3.Connection, table: str, hint: int) -> dict[int, dict[str, Any]]:
    """A table's rows by rowid through SQLite: rowid ranges, split where they fail, so one bad page
    costs only the rows SQLite cannot reach through it."""
    rows: dict[int, dict[str, Any]] = {}
    try:
        names = [d[0] for d in db.execute(f"SELECT rowid AS _rowid_, * FROM {table} WHERE 0").description]
    except sqlite3.Error:
        return rows  # no table (the schema is damaged): the raw pages may still have the rows
    select = f"SELECT rowid AS _rowid_, * FROM {table} WHERE "

    def take(sql: str, args: tuple[int, ...]) -> bool:
        try:
            found = db.execute(select + sql, args).fetchall()
        except sqlite3.Error:
            return False
        for row in found:
            rows[row[0]] = dict(zip(names[1:], row[1:], strict=True))
        return True

    top = max(hint, _scalar(db, f"SELECT max(rowid) FROM {table}") or 0)
    spans = [(1, top)] if top >= 1 else []
    while spans:
        lo, hi = spans.pop()
        if take("rowid BETWEEN ? AND ?", (lo, hi)):
            continue
        if hi - lo < _SPLIT_BELOW:
            for rowid in range(lo, hi + 1):
                take("rowid = ?", (rowid,))
        else:
            mid = (lo + hi) // 2
            spans += [(lo, mid), (mid + 1, hi)]
    take("rowid > ?", (top,))
    return rows


def _raw_rows(backup: str) -> dict[str, Any]:
    """Jobs, events, job ids (from index entries) and the id sequence as found on the raw pages."""
    from getm_tui.queue.pagescan import INDEX_LEAF, PageFile

    with open(backup, "rb") as f:
        db = f.read()
    wal = b""
    with contextlib.suppress(FileNotFoundError), open(backup + "-wal", "rb") as f:
        wal = f.read()
    columns = _job_columns()
    jobs: dict[int, dict[str, Any]] = {}
    events: dict[int, dict[str, Any]] = {}
    index_ids: set[int] = set()
    seq = 0
    for cell in PageFile(db, wal).cells():
        v = cell.values
        if cell.kind == INDEX_LEAF:  # jobs_runnable: (state, priority, id) and the rowid, which is the id
            if (
                len(v) == 4
                and v[0] in STATES
                and isinstance(v[1], int)
                and isinstance(v[2], int)
                and v[2] == v[3]
            ):
                index_ids.add(v[2])
        elif cell.rowid is None or cell.rowid < 1:
            continue
        elif len(v) == len(columns) and v[0] is None:
            row = dict(zip(columns, v, strict=True))
            old = jobs.get(cell.rowid)
            if old is None or _newer(row, old):
                jobs[cell.rowid] = row
        elif len(v) == 4 and isinstance(v[0], int) and isinstance(v[2], str) and isinstance(v[3], str):
            events[cell.rowid] = dict(zip(("job_id", "at", "kind", "message"), v, strict=True))
        elif len(v) == 2 and v[0] == "jobs" and isinstance(v[1], int):
            seq = max(seq, v[1])
    return {"jobs": jobs, "events": events, "index_ids": index_ids, "seq": seq}


def _newer(row: dict[str, Any], old: dict[str, Any]) -> bool:
    a, b = row.get("updated"), old.get("updated")
    return isinstance(a, (int, float)) and (not isinstance(b, (int, float)) or a > b)


# -- checking what was read --------------------------------------------------------------------------


def _job(rowid: int, row: dict[str, Any]) -> dict[str, Any] | None:
    """A job row fit to insert, or None if what identifies the job is missing or garbled."""
    from getm_tui.engine.errors import UsageError
    from getm_tui.engine.urls import validate

    url, directory, state, created, updated = (row.get(k) for k in _JOB_KEYS)
    if not isinstance(url, str) or not isinstance(directory, str) or not os.path.isabs(directory):
        return None
    try:
        if validate(url) != url:
            return None
    except UsageError:
        return None
    created_at, updated_at = _when(created), _when(updated)
    if state not in STATES or created_at is None or updated_at is None:
        return None
    return {
        "id": rowid,
        "url": url,
        "directory": directory,
        "name": _text(row.get("name")),
        "path": _text(row.get("path")),
        "state": state,
        "priority": _int(row.get("priority"), 0, None) or 0,
        "concurrency": _int(row.get("concurrency"), 1, None),
        "size": _int(row.get("size"), 0, None),
        "bytes_done": _int(row.get("bytes_done"), 0, None) or 0,
        "checksums": _json(row.get("checksums"), list) or "[]",
        "integrity": _json(row.get("integrity"), list),
        "verdict": _text(row.get("verdict")),
        "attempts": _int(row.get("attempts"), 0, None) or 0,
        "error": _text(row.get("error")),
        "resume": _json(row.get("resume"), dict),
        "info": _json(row.get("info"), dict),
        "created": created_at,
        "updated": updated_at,
        "started": _when(row.get("started")),
        "finished": _when(row.get("finished")),
    }


def _event(row: dict[str, Any]) -> tuple[Any, ...] | None:
    job_id, at, kind, message = (row.get(k) for k in ("job_id", "at", "kind", "message"))
    when = _when(at)
    if isinstance(job_id, int) and when is not None and isinstance(kind, str) and isinstance(message, str):
        return (job_id, when, kind, message)
    return None


def _when(v: Any) -> float | None:
    """A stored time, or None if it is not a plausible one."""
    # From 2001 to a day ahead: a garbled number is rarely a plausible time.
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 1e9 < v < time.time() + 86400:
        return float(v)
    return None


def _int(v: Any, low: int | None, high: int | None) -> int | None:
    if not isinstance(v, int) or isinstance(v, bool):
        return None
    if (low is not None and v < low) or (high is not None and v > high):
        return None
    return v


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _json(v: Any, kind: type) -> str | None:
    if not isinstance(v, str):
        return None
    try:
        return v if isinstance(json.loads(v), kind) else None
    except ValueError:
        return None


# -- building the new file ---------------------------------------------------------------------------


def _build(path: str, found: _Salvage, backup: str) -> int:
    """Write the kept jobs and events into a new queue file at `path`; the number of jobs requeued."""
    columns = _job_columns()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private before SQLite opens it
    os.close(fd)
    db = sqlite3.connect(path, isolation_level=None)
    requeued = 0
    note = f"recovered from a damaged queue file (saved as {backup})"
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(SCHEMA)
        db.execute("BEGIN")
        insert = f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        now = time.time()
        for job_id in sorted(found.jobs):
            job = found.jobs[job_id]
            message = note
            if job["state"] == "active":
                job["state"] = "queued"
                requeued += 1
                message += "; it was active: queued again"
            db.execute(insert, [job[c] for c in columns])
            db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (job_id, now, "warning", message))
        events = sorted(found.events.values(), key=lambda e: (e[1], e[0]))
        db.executemany("INSERT INTO events (job_id, at, kind, message) VALUES (?, ?, ?, ?)", events)
        # New ids continue past every id seen, so a lost job's id never names a different job.
        db.execute("INSERT OR IGNORE INTO sqlite_sequence (name, seq) VALUES ('jobs', 0)")
        db.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'jobs'", (found.top_id,))
        db.execute("COMMIT")
    except sqlite3.Error as e:
        raise OSError(f"building the new queue file: {e}") from None
    finally:
        db.close()
    return requeued


def _job_columns() -> list[str]:
    """The jobs table's columns, read from SCHEMA itself so this never drifts from queue.py."""
    with contextlib.closing(sqlite3.connect(":memory:")) as mem:
        mem.executescript(SCHEMA)
        return [r[1] for r in mem.execute("PRAGMA table_info(jobs)")]


# -- small things ------------------------------------------------------------------------------------


def _scalar(db: sqlite3.Connection, sql: str) -> Any:
    try:
        row = db.execute(sql).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _quietly(db: sqlite3.Connection, sql: str) -> None:
    with contextlib.suppress(sqlite3.Error):
        db.execute(sql)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
