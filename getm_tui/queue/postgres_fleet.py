"""What a PostgreSQL queue does for a fleet on top of being a queue: the runner's claims, its leases and
their heartbeat, and the fence that keeps a runner that lost a job from writing about it.

A claim takes queued jobs with `FOR UPDATE SKIP LOCKED`, so two runners never take the same job; each
claim is a lease with an epoch, renewed by the runner's heartbeat; every write a runner makes about a job
it holds carries that epoch (pgsql.FENCE), so once another runner has taken the job over (a new epoch)
the old one changes nothing, and learns at its next write or heartbeat that the job is lost.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from getm_tui.queue import pgsql as S
from getm_tui.queue.errors import QueueError
from getm_tui.queue.records import Job, RunnerInfo, claim_order
from getm_tui.queue.rows import job_from_row

if TYPE_CHECKING:
    import psycopg

# Runners that stopped more than this long ago are forgotten when another joins.
FORGET_RUNNERS_AFTER = 24 * 3600
# A turn another caller took in a transaction not yet visible: it is taken; look again after this.
TURN_RACED = 1.0


class FleetLeases:
    """The lease bookkeeping of one connection that runs jobs (a runner); PostgresQueue's base."""

    _runner: int | None  # this connection's runner id, once it joined the fleet
    _lease_timeout: float
    _held: dict[int, int]  # job id -> lease epoch, of the jobs this runner holds
    _lost: set[int]  # lost since the last heartbeat: for the runner to hear of
    _fenced_out: set[int]  # lost for good: every write about them changes nothing

    if TYPE_CHECKING:

        def _x(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Any]: ...

        def batch(self, immediate: bool = False) -> contextlib.AbstractContextManager[None]: ...

        def _leave_origins(self) -> None: ...

    def _init_leases(self) -> None:
        self._runner = None
        self._lease_timeout = 30.0
        self._held = {}
        self._lost = set()
        self._fenced_out = set()

    def _fenced(self, job_id: int, sql: str, args: list[Any]) -> tuple[str, list[Any]]:
        if job_id in self._fenced_out:
            return sql + S.NOTHING, args
        epoch = self._held.get(job_id)
        if epoch is None:
            return sql, args
        return sql + S.FENCE, [*args, self._runner, epoch]

    def _hold(self, job_id: int, epoch: int) -> None:
        """A claim: the job is this runner's at this epoch (even if it lost it once before)."""
        self._held[job_id] = epoch
        self._fenced_out.discard(job_id)
        self._lost.discard(job_id)

    def _lose(self, job_id: int) -> None:
        """Another runner holds the job now: this one writes nothing more about it."""
        self._held.pop(job_id, None)
        self._lost.add(job_id)
        self._fenced_out.add(job_id)

    def _check_held(self, job_id: int) -> None:
        """A write about a job this runner holds changed nothing: find out whether it is still its own."""
        if job_id not in self._held:
            return
        row = self._x(S.HOLDER, (job_id,)).fetchone()
        if row is None or (row[0], row[1]) != (self._runner, self._held[job_id]):
            self._lose(job_id)

    def _release(self, job_id: int) -> None:
        """The job is no longer this runner's (it ended, or went back to the queue)."""
        self._held.pop(job_id, None)

    def claim(self, job_id: int) -> bool:
        row = self._x(
            S.CLAIM_ONE,
            {"now": time.time(), "runner": self._runner, "ttl": self._lease_timeout, "id": job_id},
        ).fetchone()
        if row is None:
            return False
        if self._runner is not None:
            self._hold(job_id, int(row[0]))
        return True

    def claim_runnable(self, limit: int, exclude: Collection[int] = ()) -> list[Job]:
        """Claim up to `limit` queued jobs by priority, then age, skipping rows another runner is claiming
        at the same moment (SKIP LOCKED): two runners never take the same job."""
        if limit <= 0:
            return []
        args = {
            "now": time.time(),
            "runner": self._runner,
            "ttl": self._lease_timeout,
            "exclude": list(exclude),
            "limit": limit,
        }
        jobs = []
        for row in self._x(S.CLAIM_RUNNABLE, args).fetchall():
            job = job_from_row(row[:-1])
            if self._runner is not None:
                self._hold(job.id, int(row[-1]))
            jobs.append(job)
        jobs.sort(key=claim_order)
        return jobs

    # -- a fleet ----------------------------------------------------------------------------------

    def join_fleet(self, data_dir: str, lease_timeout: float) -> bool:
        self._x(S.PRUNE_RUNNERS, (time.time() - FORGET_RUNNERS_AFTER,))
        row = self._x(
            S.REGISTER_RUNNER, (socket.gethostname(), os.getpid(), data_dir, time.time(), lease_timeout)
        ).fetchone()
        assert row is not None
        self._runner = int(row[0])
        self._lease_timeout = lease_timeout
        return True

    def heartbeat(self, bytes_done: int = 0, jobs_done: int = 0) -> set[int]:
        if self._runner is None:
            return set()
        with self.batch():
            self._x(S.HEARTBEAT, {"bytes": bytes_done, "jobs": jobs_done, "id": self._runner})
            mine = list(self._held)
            renewed = dict(self._x(S.RENEW_LEASES, (self._lease_timeout, self._runner, mine)).fetchall())
        for job_id in mine:
            if renewed.get(job_id) != self._held[job_id]:
                self._lose(job_id)
        lost, self._lost = self._lost, set()
        return lost

    def holds(self, job_id: int) -> bool:
        return job_id not in self._fenced_out

    def leave_fleet(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(QueueError), self.batch():
                self._x(S.STOP_RUNNER, (time.time(), self._runner))
                self._leave_origins()

    def runners(self) -> list[RunnerInfo]:
        return [RunnerInfo(*row) for row in self._x(S.RUNNERS)]

    def take_turn(self, key: str, seconds: float) -> float:
        row = self._x(S.TAKE_TURN, {"key": key, "secs": seconds}).fetchone()
        return TURN_RACED if row is None else float(row[0])
