"""A user's action on jobs, the one way for every backend: check every id first, then move each job the
transition applies to and record its event, and tell why the others did not move. A backend supplies only
its conditional write (`move`), inside its own command transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from getm_tui.queue.records import Job
from getm_tui.queue.states import COMMAND_EVENT, NEW_URL, Outcome, Transition, new_url_event


class _Steered(Protocol):
    """What of a JobQueue an action uses (named here: the interface module imports the backends)."""

    def batch(self, immediate: bool = False) -> AbstractContextManager[None]: ...

    def check_ids(self, ids: Sequence[int]) -> list[Job]: ...

    def log_event(self, job_id: int, kind: str, message: str) -> None: ...


def apply_transition(
    q: _Steered, move: Callable[[int], bool], transition: Transition, job_ids: Sequence[int]
) -> list[Outcome]:
    """`move(job_id)`: the backend's write of the transition, True if the job was in one of its sources."""
    out: list[Outcome] = []
    with q.batch(immediate=True):
        for job in q.check_ids(list(dict.fromkeys(job_ids))):
            if move(job.id):
                q.log_event(job.id, COMMAND_EVENT, transition.event(job.state))
                out.append(Outcome(job.id, job.state, True))
            else:
                out.append(Outcome(job.id, job.state, False, transition.refusal(job.id, job.state)))
    return out


def give_new_url(q: _Steered, move: Callable[[int], bool], job_id: int, url: str) -> Outcome:
    """A new URL for one job (the NEW_URL transition): `move(job_id)` is the backend's write of it with the
    URL, True if the job was in one of its sources; the history says so without the URL's query."""
    with q.batch(immediate=True):
        (job,) = q.check_ids([job_id])
        if not move(job.id):
            return Outcome(job.id, job.state, False, NEW_URL.refusal(job.id, job.state))
        q.log_event(job.id, COMMAND_EVENT, new_url_event(job.state, url))
        return Outcome(job.id, job.state, True)
