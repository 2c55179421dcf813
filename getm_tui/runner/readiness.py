"""Which of a set of connections has something to read, without building a selector per question.

`multiprocessing.connection.wait` and `Connection.poll` each build, fill and drop a selector: tens of us
a call. The supervisor's loop asks once per turn and once per message read from a host, about ten times
per job, and a queue of small files is CPU-bound on the supervisor and its hosts. A `select.poll` object
kept while the set stays the same answers the same question in a few microseconds.

Connections here are multiprocessing Connections, which buffer nothing of their own: a readable
descriptor is exactly a message (or the end) waiting.
"""

from __future__ import annotations

import math
import select
from collections.abc import Sequence
from typing import Any

_READABLE = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR | select.POLLNVAL


class Readiness:
    """A poll set over connections; `ready` rebuilds it when it is given a different set."""

    def __init__(self) -> None:
        self._poll = select.poll()
        self._by_fd: dict[int, Any] = {}
        self._key: tuple[int, ...] = ()

    def ready(self, conns: Sequence[Any], timeout: float | None) -> list[Any]:
        """The connections of `conns` with a message or an end to read, waiting up to `timeout` seconds
        (None: until one has). A closed connection is left out."""
        key = tuple(id(c) for c in conns)
        if key != self._key:
            self._poll = select.poll()
            self._by_fd = {}
            for c in conns:
                try:
                    fd = c.fileno()
                except (OSError, ValueError):  # closed
                    continue
                self._by_fd[fd] = c
                self._poll.register(fd, _READABLE)
            self._key = key
        try:
            events = self._poll.poll(None if timeout is None else math.ceil(timeout * 1000))
        except InterruptedError:
            return []
        return [self._by_fd[fd] for fd, _ in events if fd in self._by_fd]


def readable(conn: Any) -> bool:
    """Whether one connection has a message (or its end) waiting, without waiting."""
    try:
        fd = conn.fileno()
    except (OSError, ValueError):
        return False
    return bool(select.select([fd], [], [], 0)[0])
