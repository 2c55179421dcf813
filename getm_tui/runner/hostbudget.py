"""A job host's side of being polite to an origin: the engine's ConnectionBudget (engine/politeness.py)
for the jobs of one host, on connections its supervisor grants (runner/politeness.py).

The jobs of a host ask per request; the supervisor, who sees every host (and, in a fleet, the database),
grants per origin. In between, this counts: how many of the host's requests wait, how many connections
were asked for and not yet granted, how many were granted and not yet taken; it asks for what waits and
gives back what nobody waits for any more, so a message goes only when those counts change. Holds
(Retry-After) are kept here too, pushed by the supervisor, so a held origin is refused with no message,
and with no cap set (0) nothing is asked at all.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable

from getm_tui.runner import hostmsg as H

# How soon a request that waits for a connection asks again (a grant is taken by the next ask).
SLOT_POLL = 0.02


class HostBudget:
    """Thread-safe: the host's job threads take and give, its message loop hears grants and holds."""

    def __init__(self, cap: int, send: Callable[[H.FromHost], None]) -> None:
        self.cap = cap  # max_connections_per_host; 0: no cap, only holds
        self._send = send
        self._lock = threading.Lock()
        self._holds: dict[str, float] = {}  # origin -> time.monotonic() it may be asked again
        self._holding: dict[str, set[Hashable]] = collections.defaultdict(set)
        self._waiting: dict[str, set[Hashable]] = collections.defaultdict(set)
        self._asked: collections.Counter[str] = collections.Counter()  # asked for, not granted yet
        self._free: collections.Counter[str] = collections.Counter()  # granted, not taken yet

    # -- the engine's side ---------------------------------------------------------------------------

    def take(self, origin: str, key: Hashable) -> float:
        with self._lock:
            if key in self._holding.get(origin, ()):
                return 0.0
            left = self._holds.get(origin, 0.0) - time.monotonic()
            if left > 0:
                return left
            if not self.cap:
                return 0.0
            if self._free[origin] > 0:
                self._free[origin] -= 1
                self._waiting[origin].discard(key)
                self._holding[origin].add(key)
                self._balance(origin)
                return 0.0
            self._waiting[origin].add(key)
            self._balance(origin)
            return SLOT_POLL

    def give(self, origin: str, key: Hashable) -> None:
        if not self.cap:
            return
        with self._lock:
            if key in self._holding.get(origin, ()):
                self._holding[origin].discard(key)
                self._send(H.Give(origin, 1))
            self._waiting[origin].discard(key)
            self._balance(origin)

    def hold(self, origin: str, seconds: float) -> None:
        self.held(origin, seconds)
        self._send(H.Hold(origin, seconds))

    # -- the supervisor's side -----------------------------------------------------------------------

    def granted(self, origin: str, count: int) -> None:
        with self._lock:
            self._asked[origin] = max(0, self._asked[origin] - count)
            self._free[origin] += count
            self._balance(origin)

    def held(self, origin: str, seconds: float) -> None:
        with self._lock:
            until = time.monotonic() + seconds
            self._holds[origin] = max(until, self._holds.get(origin, 0.0))

    def _balance(self, origin: str) -> None:
        """Ask for the connections waited for, and give back the granted ones nobody waits for now."""
        waiting = len(self._waiting[origin])
        more = waiting - self._free[origin] - self._asked[origin]
        if more > 0:
            self._asked[origin] += more
            self._send(H.Ask(origin, more))
        spare = self._free[origin] - waiting
        if spare > 0:
            self._free[origin] -= spare
            self._send(H.Give(origin, spare))
        if not waiting and not self._holding[origin]:
            self._waiting.pop(origin, None)
            self._holding.pop(origin, None)
