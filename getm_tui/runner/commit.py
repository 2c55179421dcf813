"""Group commit: many finished files share one sync before the queue records them done.

ARCHITECTURE.md, invariant 2: a job is recorded done only once its file's bytes and its name are on disk.
An fsync per file costs a journal commit per file: a large part of the time of a queue of small files.
So job hosts run the engine with `sync = "caller"`, and the supervisor hands each finished job to the
thread here, which syncs in one go everything that finished since its last sync started (one `syncfs`
per filesystem; where there is no syncfs, an fsync of each file and then of each directory), and only then
hands the jobs back, to be recorded done in one queue transaction. The sync call returns before the
transaction begins, so a kill or a power cut at any moment leaves at worst a job still active whose file
is complete: the next run finds the file finished (engine.target.finished_before checks its crc32c, as the
record was saved before the sync) and records it after a sync of its own.

A job whose file is still at its partial name (engine Options.commit "caller") comes here once its
finished record is committed: the thread moves the file to its name (engine.target.commit, which never
clobbers) before the sync, so the name is on disk with the bytes. A kill before the move leaves a complete
partial file and a finished record: the next run takes the file from there without fetching it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Literal, NamedTuple

from getm_tui.engine.files import part_path
from getm_tui.engine.target import commit
from getm_tui.runner.doorbell import Doorbell

log = logging.getLogger(__name__)

NAP = 0.005  # how long more finished jobs may gather while they stream in (doorbell.py)


class Synced(NamedTuple):
    """A finished job back from a sync: `error` is None when its file is on disk."""

    job_id: int
    payload: Any
    error: str | None


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's syncfs, or None where there is none. ctypes is loaded here, by the first sync, so that
    nothing that imports the runner pays for it."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return fn


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def sync_paths(paths: Iterable[str]) -> None:
    """Make the files at `paths` and their names durable: one syncfs per filesystem they are on, or,
    without syncfs, an fsync of each file and then of each directory. Raises OSError."""
    paths = list(paths)
    directories = {os.path.dirname(os.path.abspath(p)) for p in paths}
    syncfs = _syncfs()
    if syncfs is None:
        for path in paths:
            _fsync_path(path, os.O_RDONLY)
        for directory in directories:
            _fsync_path(directory, os.O_RDONLY | os.O_DIRECTORY)
        return
    devices: set[int] = set()
    for directory in sorted(directories):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            device = os.fstat(fd).st_dev
            if device in devices:
                continue
            devices.add(device)
            if syncfs(fd) != 0:
                code = _errno()
                raise OSError(code, os.strerror(code), directory)
        finally:
            os.close(fd)


def _fsync_path(path: str, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Wakeup:
    """A pipe the supervisor's loop polls beside its connections: readable when there is news."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def fileno(self) -> int:
        return self._read

    def ring(self) -> None:
        with contextlib.suppress(BlockingIOError):  # full: it is readable already
            os.write(self._write, b"\0")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


# How the group commit moves a file left at its partial name (engine Options.commit "caller") to its name:
# "": it is under its name already; "free": to a free name if its own is taken; "replace": over what is
# there (a job added with overwrite, such as a mirror's newer copy of a file).
Move = Literal["", "free", "replace"]


def _move(batch: list[tuple[int, Any, str, Move]]) -> tuple[list[tuple[int, Any, str]], list[Synced]]:
    """Move the files still at their partial names to their names: (job, payload, path) of the files
    to sync, and the jobs whose file could not be moved, with why."""
    moved: list[tuple[int, Any, str]] = []
    failed: list[Synced] = []
    for job_id, payload, path, move in batch:
        if move:
            try:
                final = commit(part_path(path), path, overwrite=move == "replace")
            except OSError as e:
                log.warning("cannot move %s to its name: %s", os.path.basename(path), e.strerror or e)
                failed.append(Synced(job_id, payload, f"cannot move the file to its name: {e.strerror or e}"))
                continue
            if final != path:
                payload, path = replace(payload, path=final), final
        moved.append((job_id, payload, path))
    return moved, failed


class GroupCommit:
    """Finished jobs wait here for one sync of all of them; `take` returns those whose sync is over.

    The thread starts with the first job: a supervisor forks its job hosts first, while it has one thread.
    """

    def __init__(self, sync: Callable[[Iterable[str]], None] = sync_paths) -> None:
        self._sync = sync
        self._lock = threading.Lock()
        self._bell = Doorbell(NAP)
        self._waiting: list[tuple[int, Any, str, Move]] = []
        self._synced: list[Synced] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self.wakeup = _Wakeup()

    def add(self, job_id: int, payload: Any, path: str, move: Move = "") -> None:
        """Sync `path` (the job's file, under its final name) soon, then hand back (job_id, payload).
        With `move`, the file is still at part_path(path): it is moved to its name first (see Move;
        `payload`, a dataclass with a `path`, is handed back with where it went)."""
        with self._lock:
            self._waiting.append((job_id, payload, path, move))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()
        self._bell.ring()

    def take(self) -> list[Synced]:
        """The jobs whose sync has returned since the last call (or has failed, with the error)."""
        self.wakeup.drain()
        with self._lock:
            out, self._synced = self._synced, []
        return out

    def _run(self) -> None:
        while True:
            self._bell.wait()
            with self._lock:
                if not self._waiting:
                    if self._closed:
                        return
                    continue
                batch, self._waiting = self._waiting, []
            moved, unmoved = _move(batch)
            error: str | None = None
            try:
                self._sync(path for _, _, path in moved)
            except OSError as e:
                log.warning("cannot sync finished files to disk: %s", e.strerror or e)
                error = f"cannot sync the file to disk: {e.strerror or e}"
            with self._lock:
                self._synced.extend(Synced(job_id, payload, error) for job_id, payload, _ in moved)
                self._synced.extend(unmoved)
            self.wakeup.ring()

    def close(self) -> None:
        """Let the thread go once what waits is synced (the caller takes it, or leaves the jobs active)."""
        with self._lock:
            self._closed = True
        self._bell.ring()
        if self._thread is not None:
            self._thread.join()
        self.wakeup.close()
