"""The one job state machine: the states a job can be in, and what each user action does to a job.

The verbs, the supervisor and the app all steer jobs through these definitions (by way of the queue's
`apply`, `remove`, `set_priority` and `set_concurrency`), so a retry from the app and `getm-tui retry` write
the same row, say the same thing and leave the same history event. What the supervisor alone does (claim a
queued job, record its end, put back what it was running when it stopped) is in the queue interface.

    queued -> active -> done | failed        paused <-> queued        failed | canceled -> queued (retry)
    active -> queued (supervisor stopped)    active -> canceled -> (row deleted by the supervisor)
"""

from __future__ import annotations

import enum
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from getm_tui.queue.sqlite import Job


class JobState(str, enum.Enum):
    """A job's state as the queue stores it: the members are the stored strings, and compare, hash, format
    and serialize as them (enum.StrEnum, from Python 3.11 only)."""

    QUEUED = "queued"
    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


STATES: tuple[JobState, ...] = tuple(JobState)

# How a finished job's bytes compare with what was expected of them ("mismatch" is also set by a failed
# integrity check); None until a job finishes.
Verdict = Literal["verified", "unverified", "mismatch"]

# The partial file a download writes next to its target (getm_tui.engine.files.PART_SUFFIX; the verbs must
# not import the engine to find it).
PART_SUFFIX = ".getm-part"

# The kind of history event a user's command records.
COMMAND_EVENT = "command"

# Connections per job a front end may ask for.
MIN_CONCURRENCY, MAX_CONCURRENCY = 1, 64


@dataclass(frozen=True)
class Transition:
    """A user action that moves a job from one of `sources` to `target`, clearing the fields in `resets`."""

    action: str  # the verb's name, and the first word of the history event
    past: str  # what the user is told the job was not, when it cannot be moved ("not retried")
    sources: frozenset[JobState]
    target: JobState
    resets: Mapping[str, None] = field(default_factory=lambda: MappingProxyType({}))

    def applies_to(self, state: str) -> bool:
        return state in self.sources

    def event(self, before: str) -> str:
        """The message of the history event a move records."""
        return f"{self.action}: {before} -> {self.target}"

    def refusal(self, job_id: int, state: str) -> str:
        """What the user is told for a job this action does not move."""
        if state == self.target:
            return f"job {job_id} is already {self.target}"
        return f"job {job_id} is {state}; not {self.past}"


PAUSE = Transition("pause", "paused", frozenset({JobState.QUEUED, JobState.ACTIVE}), JobState.PAUSED)
RESUME = Transition("resume", "resumed", frozenset({JobState.PAUSED}), JobState.QUEUED)
# A retry starts the job's checks over as well as its transfer: the old error and verdict go (attempts stay:
# they count every run of the job).
RETRY = Transition(
    "retry",
    "retried",
    frozenset({JobState.FAILED, JobState.CANCELED}),
    JobState.QUEUED,
    MappingProxyType({"error": None, "verdict": None}),
)
TRANSITIONS: Mapping[str, Transition] = MappingProxyType({t.action: t for t in (PAUSE, RESUME, RETRY)})

# Removal: a job a supervisor is running is handed to it (canceled: it stops the transfer, removes the files
# and deletes the row); any other job's row and files go at once. Remove and the settings below apply to a
# job in any state and record no event (the row and its history go; settings change on every key press).
HANDED_OVER = JobState.CANCELED
# What a verb, which cannot see which jobs a supervisor runs, counts as running when one runs the queue.
SUPERVISED_STATES = frozenset({JobState.ACTIVE, JobState.CANCELED})


@dataclass(frozen=True)
class Outcome:
    """What an action did to one job: moved (and the state it left), or the line the user is told."""

    job_id: int
    before: JobState
    moved: bool
    message: str | None = None


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


def clamp_concurrency(n: int) -> int:
    return max(MIN_CONCURRENCY, min(MAX_CONCURRENCY, n))


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
