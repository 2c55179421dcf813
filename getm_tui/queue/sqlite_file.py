"""The SQLite file under the queue: where it lives, how long to wait for its lock, what its errors mean.

SQLite answers a busy or damaged file with error codes (and, from older builds, only words): these
functions turn them into the queue's errors, so every command says one line a user can act on.
"""

from __future__ import annotations

import os
import sqlite3
import threading

from getm_tui.queue.errors import QueueError
from getm_tui.queue.schema import DB_NAME

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


def is_busy(e: sqlite3.Error) -> bool:
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


def seconds(ms: int) -> str:
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


def writer_lock(path: str) -> threading.Lock:
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(path, threading.Lock())


def reads_only(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in ("SELECT", "PRAGMA")


def first_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip() and not line.startswith("***")]
    return (lines[0] if lines else str(text)).strip()[:200]
