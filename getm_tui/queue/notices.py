"""What a runner of a fleet hears from the others through the database: a job was added, or one was
steered (paused, resumed, retried, removed, its priority or connections changed, taken back into the
queue). PostgreSQL's LISTEN/NOTIFY on a connection of its own, which the runner waits on together with
its hosts and front ends, so an idle runner starts a new job, and the runner holding a steered job
hears of it, at once rather than at its next look at the queue (the looks go on, less often, as the
fallback).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from getm_tui.queue import pgsql as S
from getm_tui.queue.errors import QueueUnreachable
from getm_tui.queue.pgconnect import connect, display_name, say

if TYPE_CHECKING:
    import psycopg


class Notices:
    """A connection that listens: readable (its fileno) when there is something to hear."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self.held = False  # an origin asked the fleet to wait since the runner last read the holds
        for channel in (S.CHANNEL_ADDED, S.CHANNEL_STEERED, S.CHANNEL_HELD):
            conn.execute(f"LISTEN {channel}")

    def fileno(self) -> int:
        return self._conn.fileno()

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def heard(self) -> bool:
        """Take what arrived; whether a job was added or steered (a hold of an origin sets `held`). A lost
        connection closes this (the runner's own connection finds the outage and listens again once the
        database is back)."""
        import psycopg

        try:
            channels = {n.channel for n in self._conn.notifies(timeout=0)}
        except psycopg.Error:
            self.close()
            return True
        self.held = self.held or S.CHANNEL_HELD in channels
        return bool(channels - {S.CHANNEL_HELD})

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


def listen(location: str, timeout_ms: int | None) -> Notices:
    """A connection of its own that listens; QueueUnreachable as connecting is."""
    import psycopg

    conn = connect(location, timeout_ms)
    try:
        return Notices(conn)
    except psycopg.Error as e:
        conn.close()
        raise QueueUnreachable(f"cannot listen on {display_name(location)}: {say(e, location)}") from None
