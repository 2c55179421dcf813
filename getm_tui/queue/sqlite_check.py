"""`PRAGMA quick_check` of the queue file: at open, or in a thread beside a listing.

Always through a read-only connection of its own: closing a read-write one, the last on the file, would
checkpoint the WAL into the damaged file and delete it before anyone could back it up.

Beside a listing: quick_check reads every page, most of a second on a million jobs, and `ls` need not wait
for it before its first line. SQLite steps without Python's GIL, so on two cores the check and the listing
overlap. The verdict is still awaited before the listing counts as whole: on a damaged page SQLite's range
reads can skip rows without an error, so only the check can tell a short list from a complete one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from urllib.parse import quote

from getm_tui.queue.errors import QueueCorrupt, QueueError, QueueLocked
from getm_tui.queue.sqlite_file import first_line

Explain = Callable[[sqlite3.Error], QueueError]

_CANCEL_WAIT = 2.0  # seconds a cancelled check is given to stop; it is a daemon thread past that
_INTERRUPT_EVERY = 0.01  # an interrupt before the statement starts does nothing: it is sent again


def open_read_only(path: str, timeout_ms: int) -> sqlite3.Connection | None:
    """A read-only connection to the file (any thread may use it, one at a time); None if there is no
    file yet: nothing to check."""
    try:
        probe = sqlite3.connect(
            f"file:{quote(path)}?mode=ro", uri=True, timeout=timeout_ms / 1000, check_same_thread=False
        )
    except sqlite3.Error:
        return None
    probe.execute(f"PRAGMA busy_timeout = {timeout_ms}")
    return probe


def quick_check(probe: sqlite3.Connection, explain: Explain) -> str | None:
    """The first damage quick_check reports, or None. A file that cannot be read as a database for any
    other reason (a new, empty file) is left for the read-write open to tell; QueueCorrupt or QueueLocked
    (from `explain`) when the check itself fails that way."""
    try:
        verdict = probe.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as e:
        error = explain(e)
        if isinstance(error, (QueueCorrupt, QueueLocked)):
            raise error from None
        return None
    return None if verdict == "ok" else first_line(verdict)


class LaterCheck:
    """quick_check in a daemon thread, on a connection opened now, while the caller reads on its own."""

    def __init__(self, path: str, timeout_ms: int, explain: Explain, held: contextlib.ExitStack) -> None:
        """`held`: queue.lock, held shared until the end, so that a recovery by another process waits for
        this reader to end rather than fail because the file is open."""
        self._held = held
        self._probe = open_read_only(path, timeout_ms)
        if self._probe is not None:
            # One read now: from it on, this connection holds its lock on the file, so the reader's own,
            # closed first when the file is damaged (see `end`), is never the last.
            with contextlib.suppress(sqlite3.Error):  # the check, reading the same, will tell
                self._probe.execute("PRAGMA schema_version").fetchone()
        self._explain = explain
        self._cancelled = threading.Event()
        self._damage: str | None = None
        self._failure: QueueError | None = None
        self._thread = threading.Thread(target=self._run, name="queue-check", daemon=True)
        if self._probe is not None:
            self._thread.start()

    def _run(self) -> None:
        if self._probe is None or self._cancelled.is_set():
            return
        try:
            self._damage = quick_check(self._probe, self._explain)
        except QueueError as e:
            self._failure = e

    def end(self, close_reader: Callable[[], None], wait: bool = True) -> str | None:
        """Wait for the verdict (`wait`; Ctrl-C still interrupts the wait), close the reader's connection
        and the check's, and release queue.lock; the damage found, or None. Raises QueueLocked or
        QueueCorrupt as the check at open does. Unless the file is sound, the reader's connection is
        closed first, while the check's is open: it is not the last, so it does not checkpoint the WAL
        into a damaged file and delete it before the backup."""
        try:
            damage = self._verdict() if wait else None
        except BaseException:
            self._close_beside(close_reader)
            raise
        if damage is None and wait:
            try:
                self._close()
                close_reader()
            finally:
                self._held.close()
        else:
            self._close_beside(close_reader)
        return damage

    def _verdict(self) -> str | None:
        if self._thread.is_alive():
            self._thread.join()
        if self._failure is not None:
            raise self._failure
        return self._damage

    def _close_beside(self, close_reader: Callable[[], None]) -> None:
        try:
            close_reader()
        finally:
            self._cancel()
            self._held.close()

    def _cancel(self) -> None:
        """Stop the check if it still runs, and close its connection."""
        self._cancelled.set()
        if self._probe is None:
            return
        deadline = time.monotonic() + _CANCEL_WAIT
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._probe.interrupt()
            self._thread.join(_INTERRUPT_EVERY)
        self._close()

    def _close(self) -> None:
        if self._probe is not None and not self._thread.is_alive():
            self._probe.close()
