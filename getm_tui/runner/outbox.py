"""What a job host tells its supervisor, in as few writes as it can.

Every write to the supervisor's pipe wakes it for a turn of its loop, and a small file's job says three
things within a millisecond of each other: its probe, its last progress report and its end. So news (a
probe, a progress report, a log line) waits here for the next message the supervisor must act on at once
(an end, a save the job waits for, a request for connections) and goes with it in one write, in the
order it was posted; when nothing urgent follows, it goes on its own at most `LATER` seconds after it
was posted. The thread that writes it late naps between looks while news keeps coming (doorbell.py):
waking it for each job's probe cost the host more than the write it saves.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from getm_tui.runner import hostmsg as H
from getm_tui.runner.doorbell import Doorbell

# How long news may wait for company: short beside what a front end shows (ten snapshots a second).
LATER = 0.05


class Outbox:
    """Writes (by `write`, which may raise OSError or ValueError once the supervisor is gone) of one
    host's messages; thread-safe. A write happens under the lock, so what is written keeps the order in
    which it was posted or sent."""

    def __init__(self, write: Callable[[Any], None], later: float = LATER) -> None:
        self._write = write
        self._later = later
        self._lock = threading.Lock()
        self._news: list[H.FromHost] = []
        self._posted = Doorbell(later)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._flush_later, name="outbox", daemon=True)
        self._thread.start()

    def post(self, msg: H.FromHost) -> None:
        """News: written with the next message sent, or within `later` seconds."""
        with self._lock:
            self._news.append(msg)
            first = len(self._news) == 1
        if first:
            self._posted.ring()

    def send(self, msg: H.FromHost) -> None:
        """Write `msg` now, after the news still waiting, in one write."""
        with self._lock:
            news, self._news = self._news, []
            self._write(H.Several([*news, msg]) if news else msg)

    def flush(self) -> None:
        with self._lock:
            news, self._news = self._news, []
            if news:
                self._write(news[0] if len(news) == 1 else H.Several(news))

    def close(self) -> None:
        """Write what waits, and stop the thread that writes late news."""
        self._closed.set()
        self._posted.ring(now=True)
        self._thread.join(1.0)
        with contextlib.suppress(OSError, ValueError):
            self.flush()

    def _flush_later(self) -> None:
        while True:
            # Woken from a sleep, the news is fresh: it waits for company. After a nap, what is there
            # was posted within the nap.
            if self._posted.wait() and self._closed.wait(self._later):
                return
            if self._closed.is_set():
                return
            try:
                self.flush()
            except (OSError, ValueError):
                return  # the supervisor is gone: the host's loop hears of it and stops
