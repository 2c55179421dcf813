"""What a fleet on PostgreSQL shares to be polite to an origin as one: its connection slots
(max_connections_per_host across all runners) and the waits it asked for (Retry-After).

A slot is a row (origin, slot number) held by one runner: taken in one statement that finds free numbers
below the cap, and free again when the runner gives it back or stops beating (its heartbeat older than
its lease_timeout), so a killed runner's slots come back as its jobs do. A runner holds slots while its
jobs need them and hands them out to its own job hosts itself (runner/politeness.py): one statement per
turn of its loop and origin, not one per request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from getm_tui.queue import pgsql as S

if TYPE_CHECKING:
    import psycopg


class FleetOrigins:
    """The origins' slots and holds of one runner's connection; PostgresQueue's base."""

    _runner: int | None

    if TYPE_CHECKING:

        def _x(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Any]: ...

        def batch(self, immediate: bool = False) -> contextlib.AbstractContextManager[None]: ...

    def origin_slots(self) -> FleetOrigins | None:
        return self if self._runner is not None else None

    def claim_slots(self, origin: str, cap: int, count: int) -> list[int]:
        """Up to `count` free slots of the origin's `cap` (none while it is held), now this runner's."""
        args = {"origin": origin, "runner": self._runner, "cap": cap, "count": count}
        return [int(row[0]) for row in self._x(S.CLAIM_SLOTS, args).fetchall()]

    def release_slots(self, origin: str, slots: Sequence[int]) -> None:
        self._x(S.RELEASE_SLOTS, (origin, self._runner, list(slots)))

    def hold_origin(self, origin: str, seconds: float) -> None:
        """Nobody in the fleet opens a connection to `origin` for `seconds` (every runner hears of it)."""
        with self.batch():
            self._x(S.HOLD_ORIGIN, (origin, seconds))
            self._x(S.NOTIFY_HELD)

    def origin_holds(self) -> dict[str, float]:
        """The origins held now, and the seconds each is held for yet."""
        return {str(o): float(left) for o, left in self._x(S.ORIGIN_HOLDS).fetchall()}

    def _leave_origins(self) -> None:
        """A runner that stops gives its slots back at once (one that is killed, once it stops beating)."""
        if self._runner is not None:
            self._x(S.RELEASE_ALL_SLOTS, (self._runner,))
            self._x(S.PRUNE_HOLDS)
