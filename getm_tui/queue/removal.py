"""Removing a job, the one way for every front end: who removes it (the supervisor that runs it, or the
caller at once), and which files go with it."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass

from getm_tui.queue.records import Job
from getm_tui.queue.states import JobState

# The partial file a download writes next to its target (getm_tui.engine.files.PART_SUFFIX; the verbs must
# not import the engine to find it).
PART_SUFFIX = ".getm-part"

# A job a supervisor is running is handed to it (canceled: it stops the transfer, removes the files and
# deletes the row); any other job's row and files go at once. A removal applies to a job in any state and
# records no event (the row and its history go).
HANDED_OVER = JobState.CANCELED
# What a verb, which cannot see which jobs a supervisor runs, counts as running when one runs the queue.
SUPERVISED_STATES = frozenset({JobState.ACTIVE, JobState.CANCELED})


@dataclass(frozen=True)
class Removal:
    """A removed job: handed to the supervisor that runs it, or gone with `files` still to delete."""

    job_id: int
    handed_over: bool
    files: tuple[str, ...] = ()


def supervisor_runs(job: Job, running: Collection[int] | None, supervised: bool) -> bool:
    """Whether a removal hands the job to a supervisor: the one asking knows what it runs (`running`);
    anyone else counts an active job (or one already handed over) as run when a supervisor is alive."""
    if running is not None:
        return job.id in running
    return supervised and job.state in SUPERVISED_STATES


def target_of(job: Job) -> str | None:
    """The file a job writes: the path its probe found, else the name it was given, else unknown yet."""
    if job.path:
        return job.path
    if job.name:
        return os.path.join(job.directory, job.name)
    return None


def files_of_removal(job: Job, delete_file: bool) -> tuple[str, ...]:
    """A removed job leaves nothing partial behind; its finished file goes only when asked."""
    target = target_of(job)
    if not target:
        return ()
    if delete_file and job.state == JobState.DONE:
        return (target + PART_SUFFIX, target)
    return (target + PART_SUFFIX,)


def delete_files(paths: tuple[str, ...] | list[str]) -> list[tuple[str, OSError]]:
    """Delete what a removal leaves; a file already gone is fine, any other failure is returned."""
    failed: list[tuple[str, OSError]] = []
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            failed.append((path, e))
    return failed
