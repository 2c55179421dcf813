"""What users do to jobs in a SQLite queue: the transitions of states.py (pause, resume, retry, a new URL),
removal, priority and connections, each a write of the queue's own connection. Queue's base class."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from getm_tui.queue.lock import running_supervisor
from getm_tui.queue.records import Job
from getm_tui.queue.removal import HANDED_OVER, Removal, files_of_removal, supervisor_runs
from getm_tui.queue.states import (
    NEW_URL,
    Outcome,
    Transition,
    clamp_concurrency,
)
from getm_tui.queue.steering import apply_transition, give_new_url

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


class UserActions:
    """The user's side of the SQLite queue."""

    data_dir: str

    if TYPE_CHECKING:

        def batch(self, immediate: bool = False) -> AbstractContextManager[None]: ...

        def transition(self, job_id: int, to: str, from_states: Collection[str], **values: Any) -> bool: ...

        def update(self, job_id: int, **values: Any) -> None: ...

        def delete(self, job_id: int) -> None: ...

        def log_event(self, job_id: int, kind: str, message: str) -> None: ...

        def check_ids(self, ids: Sequence[int]) -> list[Job]: ...

    # -- what users do ----------------------------------------------------------------------------

    def apply(self, transition: Transition, job_ids: Sequence[int]) -> list[Outcome]:
        def move(job_id: int) -> bool:
            return self.transition(job_id, transition.target, transition.sources, **transition.resets)

        return apply_transition(self, move, transition, job_ids)

    def set_url(self, job_id: int, url: str) -> Outcome:
        def move(jid: int) -> bool:
            return self.transition(jid, NEW_URL.target, NEW_URL.sources, url=url, **NEW_URL.resets)

        return give_new_url(self, move, job_id, url)

    def remove(
        self, job_ids: Sequence[int], delete_file: bool, running: Collection[int] | None = None
    ) -> list[Removal]:
        out: list[Removal] = []
        with self.batch(immediate=True):
            # Asked inside the write transaction: a supervisor that starts later cannot make a job active
            # before this commits, so an active job seen here without one is what a dead one left.
            supervised = running is None and running_supervisor(self.data_dir) is not None
            for job in self.check_ids(list(dict.fromkeys(job_ids))):
                if supervisor_runs(job, running, supervised):
                    # The supervisor owns the transfer: it stops it, removes its files and deletes the row.
                    info = {**job.info, "delete_file": bool(delete_file)}
                    self.update(job.id, state=HANDED_OVER, info=info)
                    out.append(Removal(job.id, True))
                else:
                    self.delete(job.id)
                    out.append(Removal(job.id, False, files_of_removal(job, delete_file)))
        return out

    def set_priority(self, job_id: int, priority: int) -> None:
        self.update(job_id, priority=int(priority))

    def set_concurrency(self, job_id: int, concurrency: int) -> int:
        n = clamp_concurrency(int(concurrency))
        self.update(job_id, concurrency=n)
        return n
