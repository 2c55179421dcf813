"""The saved mirrors of the config, re-listed by the supervisor on their intervals.

Listing a tree takes seconds to minutes of network waits, so it runs in a thread of its own with its own
queue connection: the supervisor's loop never waits on it, and sees the jobs a pass queued as it sees any
other process's. A mirror is due when it was never listed or its last pass (mirror/status.py, kept in the
data dir, so a restarted runner does not list everything again) is an interval ago. A pass that fails is
one warning line and is tried again at the next interval. With `run --once` the due mirrors are listed
once, before the runner decides that nothing is left.

The runners of a fleet may all have the mirror saved: one of them takes the turn at each pass (the
queue's take_turn, for the mirror's interval) and the others leave it until that turn is over, so two
runners never list one tree at once and queue its files twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from getm_tui.config import Settings
from getm_tui.engine.errors import EngineError
from getm_tui.engine.urls import redact
from getm_tui.mirror import status
from getm_tui.mirror.spec import SavedMirror
from getm_tui.queue.errors import QueueError
from getm_tui.queue.interface import open_queue

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 5.0


class MirrorSchedule:
    def __init__(self, settings: Settings, data_dir: str, once: bool) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.once = once
        self.saved: dict[str, SavedMirror] = dict(settings.mirrors)
        self.stop = threading.Event()
        # Set when every mirror due at the start has been listed once (at once when none is saved).
        self.first_pass = threading.Event()
        self._thread: threading.Thread | None = None
        self._elsewhere: dict[str, float] = {}  # mirror -> until when another runner of the fleet has it

    def start(self) -> None:
        if not self.saved:
            self.first_pass.set()
            return
        self._thread = threading.Thread(target=self._run, name="getm-mirrors", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)

    def due_at(self, name: str) -> float:
        """When the mirror is next due, in seconds since the epoch (0: now)."""
        last = status.last(self.data_dir, name)
        here = 0.0 if last is None else last.at + self.saved[name].interval
        return max(here, self._elsewhere.get(name, 0.0))

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                for name in sorted(self.saved):
                    if self.stop.is_set():
                        return
                    if self.due_at(name) <= time.time():
                        self._pass(self.saved[name])
                self.first_pass.set()
                if self.once:
                    return
                wait = min(self.due_at(name) for name in self.saved) - time.time()
                self.stop.wait(max(0.05, wait))
        finally:
            self.first_pass.set()  # `run --once` must never wait on a thread that is gone

    def _pass(self, mirror: SavedMirror) -> None:
        from getm_tui.mirror.sync import run_pass  # a runner with no mirror due never loads the listing code

        shown = redact(mirror.spec.source)
        try:
            q = open_queue(
                self.settings.queue or self.data_dir, timeout_ms=int(self.settings.queue_timeout * 1000)
            )
            try:
                wait = q.take_turn(f"mirror:{mirror.name}", mirror.interval)
                if wait > 0:
                    self._elsewhere[mirror.name] = time.time() + wait
                    log.info("mirror %s: listed by another runner; next in %.0fs", mirror.name, wait)
                    return
                result = run_pass(q, mirror.spec, self.settings, lambda line: log.warning("%s", line))
            finally:
                q.close()
        except (EngineError, QueueError, OSError) as e:
            text = str(e) if not isinstance(e, OSError) else f"{e.strerror or e}: {e.filename or ''}"
            self._failed(mirror, shown, text)
            return
        except Exception as e:  # a bug in one pass must not end the schedule of every mirror
            log.exception("mirror %s: internal error", mirror.name)
            self._failed(mirror, shown, f"internal error: {type(e).__name__}: {e}")
            return
        line = result.describe()
        log.info("mirror %s (%s): %s", mirror.name, shown, line)
        with contextlib.suppress(OSError):
            status.record(self.data_dir, mirror.name, True, line)

    def _failed(self, mirror: SavedMirror, shown: str, text: str) -> None:
        with contextlib.suppress(OSError):
            status.record(self.data_dir, mirror.name, False, text)
        log.warning("mirror %s (%s): %s; tried again in %ds", mirror.name, shown, text, mirror.interval)
