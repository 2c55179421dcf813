"""One supervisor per queue: an flock on `supervisor.lock` in the data dir, holding the owner's pid.

The kernel drops the lock when its holder dies however it dies, so a stale lock never blocks a restart,
and anyone can ask whether a supervisor is alive without talking to it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOCK_NAME = "supervisor.lock"
QUEUE_LOCK_NAME = "queue.lock"
_ACQUIRE_TRIES = 5


class QueueBusy(Exception):
    """Another process runs this queue."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"the queue is already run by process {pid}" if pid else "the queue is already run")
        self.pid = pid


def lock_path(data_dir: str) -> str:
    return os.path.join(data_dir, LOCK_NAME)


class SupervisorLock:
    def __init__(self, data_dir: str) -> None:
        self.path = lock_path(data_dir)
        self.fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        # `running_supervisor` probes with a shared lock held for microseconds; a few short retries keep such
        # a probe (an `ls`, an `rm`) from passing for a live supervisor and making a starting one give up.
        for attempt in range(_ACQUIRE_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == _ACQUIRE_TRIES - 1:
                    pid = _read_pid(fd)
                    os.close(fd)
                    raise QueueBusy(pid) from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def running_supervisor(data_dir: str) -> int | None:
    """The pid of the supervisor holding this queue, or None if no one does."""
    path = lock_path(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class LockTimeout(Exception):
    """Someone held the lock for longer than we were willing to wait."""


@contextmanager
def queue_file_lock(data_dir: str, exclusive: bool, timeout: float) -> Iterator[None]:
    """`queue.lock`: held shared by every process while it opens the queue file, and exclusive while one
    process replaces a damaged file, so no one opens the file in the middle of its replacement (an open
    connection to the old file would mix its WAL with the new one's). flock: a dead holder frees it."""
    fd = os.open(os.path.join(data_dir, QUEUE_LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout() from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)
