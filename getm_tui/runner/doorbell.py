"""How a busy thread hands work to a thread of its own (the supervisor's loop to the group commit and a
front end's sender, a job host's jobs to its outbox) without waking it for each piece.

Waking a thread from the loop costs the loop more than the work it hands over: the wake-up comes while
the loop holds the GIL, so the woken thread is scheduled only to wait for it, and the loop is often
descheduled in between. A queue of small files hands work over twice per job. So a thread that had work
recently naps between looks instead of sleeping until rung, and a ring wakes only a thread that sleeps:
while work streams in, the thread wakes by its own timer, a few hundred times a second at most.
"""

from __future__ import annotations

import threading
import time

# A thread rung within this many seconds naps between looks; after that, it sleeps until rung.
BUSY_FOR = 0.2


class Doorbell:
    def __init__(self, nap: float) -> None:
        self._nap = nap
        self._cond = threading.Condition()
        self._rung = False
        self._asleep = False
        self._rung_at = 0.0

    def ring(self, now: bool = False) -> None:
        """There is work: the thread finds it within `nap` seconds, or at once if `now` (to stop it)."""
        with self._cond:
            self._rung = True
            if self._asleep or now:
                self._cond.notify()

    def wait(self) -> bool:
        """The thread's wait for work: a nap while busy, else a sleep until rung; True after a sleep."""
        slept = False
        with self._cond:
            if not self._rung:
                if time.monotonic() - self._rung_at < BUSY_FOR:
                    self._cond.wait(self._nap)
                else:
                    self._asleep = slept = True
                    self._cond.wait_for(lambda: self._rung)
                    self._asleep = False
            if self._rung:
                self._rung, self._rung_at = False, time.monotonic()
        return slept
