"""What the supervisor alone writes in a SQLite queue: claims, probes, ends, resume records, and the
fleet's methods, which on one host have nothing to share (one supervisor per file, queue/lock.py).
Queue's base class: these run on its connection and in its batches."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from getm_tui.queue.records import Finished, Job, RunnerInfo, RunningRow, claim_order
from getm_tui.queue.rows import JOB_COLUMNS, STATE_OF, compact_json, job_from_row, loads_json
from getm_tui.queue.states import JobState

if TYPE_CHECKING:
    import sqlite3
    from contextlib import AbstractContextManager


class SupervisorWrites:
    """The supervisor's side of the SQLite queue."""

    if TYPE_CHECKING:

        def _x(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor: ...

        def batch(self, immediate: bool = False) -> AbstractContextManager[None]: ...

        def transition(self, job_id: int, to: str, from_states: Collection[str], **values: Any) -> bool: ...

        def update(self, job_id: int, **values: Any) -> None: ...

        def log_event(self, job_id: int, kind: str, message: str) -> None: ...

    # -- what the supervisor does -----------------------------------------------------------------

    def next_runnable(self, limit: int, exclude: Collection[int] = ()) -> list[Job]:
        """Queued jobs by priority (higher first), then age."""
        sql, args = _runnable(JOB_COLUMNS, limit, exclude)
        return [job_from_row(r) for r in self._x(sql, args).fetchall()]

    def claim(self, job_id: int) -> bool:
        return self.transition(job_id, JobState.ACTIVE, (JobState.QUEUED,), started=time.time(), error=None)

    def unclaim(self, job_id: int) -> bool:
        return self.transition(job_id, JobState.QUEUED, (JobState.ACTIVE,))

    def claim_runnable(self, limit: int, exclude: Collection[int] = ()) -> list[Job]:
        """One statement, as PostgreSQL's: one supervisor runs a SQLite queue, so what it asks for is
        what it gets (no one else claims). RETURNING gives no order: the priority order is made here."""
        if limit <= 0:
            return []
        now = time.time()
        runnable, args = _runnable("id", limit, exclude)
        rows = self._x(
            "UPDATE jobs SET state = 'active', started = ?, updated = ?, error = NULL"
            f" WHERE id IN ({runnable}) RETURNING {JOB_COLUMNS}",
            (now, now, *args),
        ).fetchall()
        return sorted(map(job_from_row, rows), key=claim_order)

    def join_fleet(self, data_dir: str, lease_timeout: float) -> bool:
        return False  # one supervisor per file (SupervisorLock): no leases to hold

    def heartbeat(self, bytes_done: int = 0, jobs_done: int = 0) -> set[int]:
        return set()

    def holds(self, job_id: int) -> bool:
        return True

    def runners(self) -> list[RunnerInfo]:
        return []

    def leave_fleet(self) -> None:
        pass

    def take_turn(self, key: str, seconds: float) -> float:
        return 0.0  # one supervisor runs the file's periodic tasks

    def listen(self) -> None:
        return None  # commands on a queue file reach its supervisor through its socket

    def reconnect(self) -> None:
        pass  # a file does not go away as a server does

    def origin_slots(self) -> None:
        return None  # its one supervisor counts every connection of the queue itself

    def running_rows(self, job_ids: Collection[int]) -> dict[int, RunningRow]:
        if not job_ids:
            return {}
        ids = tuple(job_ids)
        marks = ",".join("?" * len(ids))
        rows = self._x(f"SELECT id, state, concurrency FROM jobs WHERE id IN ({marks})", ids).fetchall()
        return {r[0]: RunningRow(STATE_OF.get(r[1], r[1]), r[2]) for r in rows}

    def record_probe(self, job_id: int, path: str, size: int | None, info: dict[str, Any]) -> None:
        self.update(job_id, path=path, size=size, info=info)

    def finish(self, job_id: int, result: Finished) -> None:
        with self.batch():
            self.update(
                job_id,
                state=JobState.DONE,
                path=result.path,
                size=result.size,
                bytes_done=result.size,
                verdict=result.verdict,
                integrity=result.integrity,
                finished=time.time(),
                error=None,
                resume=None,
            )
            self.log_event(job_id, "done", f"saved {result.path} ({result.verdict}, crc32c {result.crc32c})")

    def fail(self, job_id: int, error: str, mismatch: bool, kept: bool) -> None:
        now = time.time()
        with self.batch():
            self._x(
                "UPDATE jobs SET state = ?, error = ?, attempts = attempts + 1, finished = ?, updated = ?,"
                " verdict = CASE WHEN ? THEN 'mismatch' ELSE verdict END,"
                " bytes_done = CASE WHEN ? THEN bytes_done ELSE 0 END WHERE id = ?",
                (JobState.FAILED.value, error, now, now, mismatch, kept, job_id),
            )
            self.log_event(job_id, "error", error)

    def requeue_active(self) -> list[int]:
        """Jobs a dead supervisor left active go back to the queue (the caller holds the supervisor lock)."""
        ids = [r[0] for r in self._x("SELECT id FROM jobs WHERE state = 'active'")]
        if ids:
            self._x("UPDATE jobs SET state = 'queued', updated = ? WHERE state = 'active'", (time.time(),))
        return ids

    # -- resume records ---------------------------------------------------------------------------

    def load_resume(self, job_id: int) -> dict[str, Any] | None:
        row = self._x("SELECT resume FROM jobs WHERE id = ?", (job_id,)).fetchone()
        # garbled: start over (the engine re-verifies)
        return (loads_json(row[0], {}) or None) if row else None

    def save_resume(self, job_id: int, record: dict[str, Any], rate: float | None = None) -> None:
        """Keep a job's resume record (written by its host's engine), and the bytes it says are done. The
        speed is not kept: the one supervisor of a queue file tells its front ends speeds as they change."""
        done = sum(int(p[2]) for p in record.get("parts", []))
        text = compact_json(record)
        self._x("UPDATE jobs SET resume = ?, bytes_done = ? WHERE id = ?", (text, done, job_id))


def _runnable(columns: str, limit: int, exclude: Collection[int]) -> tuple[str, tuple[Any, ...]]:
    """The SELECT of up to `limit` queued jobs in the order they are claimed, and its arguments. Running
    jobs are left out by the statement: a supervisor claims a few jobs at a time while many run, and
    decoding each running job's row to drop it afterwards cost more than the claim."""
    skip = f" AND id NOT IN ({','.join('?' * len(exclude))})" if exclude else ""
    sql = f"SELECT {columns} FROM jobs WHERE state = 'queued'{skip} ORDER BY priority DESC, id LIMIT ?"
    return sql, (*exclude, limit)
