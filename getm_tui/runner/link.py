"""The app's line to the supervisor: one it starts (and stops on quit), or one already running.

Everything crosses as protocol messages; the blocking parts (spawning, connecting, joining) are meant to
run in a worker thread, never on the app's event loop.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import Client, Connection
from typing import Any

from getm_tui.config import Settings
from getm_tui.queue.lock import running_supervisor
from getm_tui.runner import protocol as P
from getm_tui.runner.endpoint import authkey, hang_up, socket_path
from getm_tui.runner.process import flush_std_streams

SPAWN = multiprocessing.get_context("spawn")
FORK = multiprocessing.get_context("fork")


def _supervisor_entry(*args: Any, front_end: Connection | None = None) -> None:
    """Runs in the new process: only there is the supervisor (and the engine under it) imported.

    `front_end`: a forked supervisor's copy of the front end's own end of their pipe. Closed at once:
    while the supervisor holds it, the pipe stays open when the front end dies, and the supervisor never
    hears that it is gone."""
    if front_end is not None:
        front_end.close()
    from getm_tui.runner.supervisor import supervisor_main

    supervisor_main(*args)


def spawn(
    data_dir: str, settings: Settings, once: bool = False, fork: bool = False
) -> tuple[Any, Connection]:
    """Start a supervisor process; returns it and our end of its Pipe.

    Spawned by default: a new interpreter, as the app needs (it has threads, and a fork copies locks held
    by other threads). `fork=True` is for a caller with one thread and no queue open (`getm-tui run`):
    the child starts with what is already imported, where a spawned one first starts an interpreter,
    re-runs the main script and starts a resource-tracker process.
    """
    start = FORK if fork else SPAWN
    parent, child = start.Pipe(duplex=True)
    proc = start.Process(
        target=_supervisor_entry,
        args=(data_dir, settings, child, once, logging.INFO),
        kwargs={"front_end": parent} if fork else {},
        name="getm-supervisor",
        daemon=False,  # it starts fetch processes of its own
    )
    if fork:
        flush_std_streams()  # or the child would write the same buffered lines again
    proc.start()
    child.close()
    return proc, parent


def attach(data_dir: str) -> Connection:
    """Connect to the supervisor already running this queue (OSError if none listens)."""
    return Client(socket_path(data_dir), family="AF_UNIX", authkey=authkey(data_dir))


class SupervisorLink:
    def __init__(self, data_dir: str, settings: Settings) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.mode = "disconnected"  # started | attached | disconnected
        self.pid: int | None = None
        self._proc: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()

    def open(self) -> str:
        """Attach to a running supervisor, or start one; returns the mode. Blocking."""
        if running_supervisor(self.data_dir) is not None:
            with contextlib.suppress(OSError, EOFError):
                self._conn = attach(self.data_dir)
                self.mode = "attached"
                return self.mode
        self._proc, self._conn = spawn(self.data_dir, self.settings)
        self.mode = "started"
        return self.mode

    def reattach(self) -> str:
        """The supervisor we started found the queue busy (another one won the race): attach to it."""
        if self._proc is not None:
            self._proc.join(2)
            self._proc = None
        self._conn = attach(self.data_dir)
        self.mode = "attached"
        return self.mode

    def send(self, msg: Any) -> bool:
        with self._lock:
            if self._conn is None:
                return False
            try:
                self._conn.send(msg)
                return True
            except (OSError, ValueError):
                return False

    def read_forever(self, deliver: Callable[[Any], object]) -> None:
        """Hand every message to `deliver` until the supervisor goes away. Blocking."""
        while True:
            conn = self._conn
            if conn is None:
                return
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                deliver(None)
                return
            deliver(msg)
            if isinstance(msg, P.Busy):
                return

    def close(self) -> None:
        """Stop the supervisor we started (it records state); just detach from one we attached to."""
        if self.mode == "started":
            self.send(P.Shutdown())
            if self._proc is not None:
                self._proc.join(5)
                if self._proc.is_alive():
                    self._proc.terminate()
                    self._proc.join(2)
        elif self.mode == "attached":
            self.send(P.Detach())
        with self._lock:
            if self._conn is not None:
                hang_up(self._conn)
                with contextlib.suppress(OSError):
                    self._conn.close()
                self._conn = None
        self.mode = "disconnected"
