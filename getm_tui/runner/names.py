"""The file names the supervisor's running jobs hold, so a small job claims its name with no round trip.

A job's engine claims its target name in the job's resume record before it creates `NAME.getm-part`
(engine.target.choose_target): that is how a killed download finds its own partial file again. Through
the supervisor that claim was a round trip per job, with the job's thread waiting on it. So the supervisor
reserves the name the job will most likely take (the one its URL gives) when it claims the job, in that
transaction, and the engine's claim of that same name needs no message (jobhost._RemoteStore).

What keeps two jobs of the queue off one file without the round trip: the supervisor is the only process
that runs this queue's jobs (one per SQLite file), and it lets no two of its running jobs hold one path.
A name is reserved only if nothing is on disk under it or its partial name and no running job holds it;
an engine's claim (a Save) of a path another running job holds is refused (hostmsg.NAME_TAKEN), and the
engine takes the next free name. So a partial file under a reserved name is the reserving job's, which is
what a restart relies on (settle). A fleet's runners share directories they cannot see each other's jobs
in: there every claim goes through the database, as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from getm_tui.engine import control
from getm_tui.engine.files import part_path
from getm_tui.engine.sources.http import filename_from
from getm_tui.queue.interface import JobQueue
from getm_tui.queue.records import Job


class HeldNames:
    def __init__(self) -> None:
        self._holder: dict[str, int] = {}  # path -> the running job that holds it
        self._held: dict[int, str] = {}  # job id -> its path
        self._unsaved: set[int] = set()  # jobs whose resume record is still the reservation
        self.on = True  # off for a runner of a fleet

    def reserve(self, q: JobQueue, job: Job) -> dict[str, Any] | None:
        """Reserve the name `job`'s URL gives, saved as its resume record (the caller's transaction is
        the one that claims the job); None when that name is not free or cannot be known before the
        probe."""
        if not self.on or job.path or not job.url.lower().startswith(("http://", "https://")):
            return None
        path = os.path.join(job.directory, job.name or filename_from(None, job.url))
        if path in self._holder or os.path.lexists(path) or os.path.lexists(part_path(path)):
            return None
        self.hold(job.id, path)
        record = control.reservation(job.url, path)
        q.save_resume(job.id, record)
        self._unsaved.add(job.id)
        return record

    def allows(self, job_id: int, directory: str, record: dict[str, Any]) -> bool:
        """Whether a job's engine may save `record`: False when it names a file another running job
        holds; otherwise the job holds the name it names from now on."""
        name = record.get("name")
        if self.on and isinstance(name, str) and not self.hold(job_id, os.path.join(directory, name)):
            return False
        self.saved(job_id)
        return True

    def saved(self, job_id: int) -> None:
        """The job's resume record is no longer its reservation."""
        self._unsaved.discard(job_id)

    def release(self, q: JobQueue, job_id: int) -> None:
        """The job left the running ones (done, failed, stopped): its name is free again, and a
        reservation still in its record is settled as at a start (see settle)."""
        path = self._held.pop(job_id, None)
        if path is not None:
            self._holder.pop(path, None)
        if job_id in self._unsaved:
            self._unsaved.discard(job_id)
            settle(q, [job_id])

    def hold(self, job_id: int, path: str) -> bool:
        """Let the job hold `path` (instead of what it held); False if another running job holds it."""
        holder = self._holder.setdefault(path, job_id)
        if holder != job_id:
            return False
        before = self._held.get(job_id)
        if before is not None and before != path:
            del self._holder[before]
        self._held[job_id] = path
        return True


def settle(q: JobQueue, job_ids: Iterable[int]) -> None:
    """For jobs that left the running ones, or that an earlier supervisor left active: a reservation whose
    partial file exists becomes a claim (no other job of the queue could take that name while the job held
    it), and one with nothing on disk is dropped. So no reservation outlives its job's run, and a later
    run never mistakes another download's partial file for its own."""
    for job_id in job_ids:
        record = q.load_resume(job_id)
        if not control.is_reserved(record):
            continue
        name = record.get("name")
        job = q.get(job_id)
        if isinstance(name, str) and os.path.exists(part_path(os.path.join(job.directory, name))):
            q.save_resume(job_id, control.unreserved(record))
        else:
            q.save_resume(job_id, {})  # an empty record claims nothing (load_resume gives None)
