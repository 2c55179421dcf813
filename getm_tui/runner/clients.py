"""A front end attached to the supervisor: its connection and a sender thread with a bounded outbox, where
a newer snapshot replaces one not yet sent, so the supervisor never waits on a slow front end."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import queue as _queue
import threading
from typing import Any

from getm_tui.runner import protocol as P
from getm_tui.runner.doorbell import Doorbell

NAP = 0.01  # how long messages may gather while they stream in (doorbell.py)


class Client:
    """One attached front end: commands are read by the supervisor loop, messages sent by a thread."""

    def __init__(self, conn: multiprocessing.connection.Connection, owner: bool) -> None:
        self.conn = conn
        self.owner = owner
        self.alive = True
        self._events: _queue.Queue[Any] = _queue.Queue(maxsize=10_000)
        self._snapshot: P.Snapshot | None = None
        # Messages handed to send() and not yet written (a snapshot counts once, however often replaced):
        # what flush() waits on.
        self._unsent = 0
        self._sent_all = threading.Condition()
        self._bell = Doorbell(NAP)
        self._thread = threading.Thread(target=self._send_loop, daemon=True, name="client-sender")
        self._thread.start()

    def send(self, msg: Any) -> None:
        with self._sent_all:
            if isinstance(msg, P.Snapshot):
                if self._snapshot is None:
                    self._unsent += 1
                self._snapshot = msg  # a newer snapshot replaces one not yet sent
            else:
                with contextlib.suppress(_queue.Full):
                    self._events.put_nowait(msg)
                    self._unsent += 1
        self._bell.ring()

    def _send_loop(self) -> None:
        while self.alive:
            self._bell.wait()
            try:
                while True:
                    try:
                        msg = self._events.get_nowait()
                    except _queue.Empty:
                        break
                    self.conn.send(msg)
                    self._written()
                with self._sent_all:
                    snap, self._snapshot = self._snapshot, None
                if snap is not None:
                    self.conn.send(snap)
                    self._written()
            except (OSError, EOFError, ValueError):
                self.alive = False
                with self._sent_all:
                    self._sent_all.notify_all()

    def _written(self) -> None:
        with self._sent_all:
            self._unsent -= 1
            if not self._unsent:
                self._sent_all.notify_all()

    def flush(self, timeout: float = 1.0) -> None:
        """Wait until everything sent so far is written (or the front end is gone, or `timeout`)."""
        self._bell.ring()
        with self._sent_all:
            self._sent_all.wait_for(lambda: not self.alive or not self._unsent, timeout)

    def close(self) -> None:
        self.alive = False
        self._bell.ring()
        with contextlib.suppress(OSError):
            self.conn.close()
