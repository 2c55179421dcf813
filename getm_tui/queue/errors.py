"""What goes wrong with a queue, as exceptions whose message is one line for the user."""

from __future__ import annotations


class QueueError(Exception):
    """The queue file cannot be used (locked for too long, corrupted, unreadable); one line for the user."""


class UnknownJob(QueueError):
    pass


class QueueLocked(QueueError):
    """Another process kept the queue locked for longer than the busy timeout."""


class QueueUnreachable(QueueError):
    """The queue's database cannot be reached (refused, timed out, authentication failed, or the
    connection was lost); a runner of a fleet keeps its jobs going and connects again."""


class QueueCorrupt(QueueError):
    """The queue file is damaged; `ino` is the file it was seen in, so a recovery can tell whether another
    process has replaced it since."""

    def __init__(self, path: str, reason: str, ino: int | None) -> None:
        super().__init__(f"the queue {path} is damaged ({reason})")
        self.path = path
        self.reason = reason
        self.ino = ino
