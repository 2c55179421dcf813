"""The one job state machine: the states a job can be in, and what each user action does to a job.

The verbs, the supervisor and the app all steer jobs through these definitions (by way of the queue's
`apply`, `remove`, `set_priority` and `set_concurrency`), so a retry from the app and `getm-tui retry` write
the same row, say the same thing and leave the same history event. Removal, which also has files to
delete, is in removal.py. What the supervisor alone does (claim a
queued job, record its end, put back what it was running when it stopped) is in the queue interface.

    queued -> active -> done | failed        paused <-> queued        failed | canceled -> queued (retry)
    active -> queued (supervisor stopped)    active -> canceled -> (row deleted by the supervisor)
    queued | paused | failed | canceled -> queued, with another URL (new url: a signed URL expired)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from getm_tui.engine.urls import redact


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

# The kind of history event a user's command records.
COMMAND_EVENT = "command"

# Connections per job a front end may ask for. Priority and connections are settings: they apply to a job in
# any state and record no event (they change on every key press).
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
        if state == self.target and not self.applies_to(state):
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
# A job given another URL (its signed URL expired, say) is queued again with the same checks started over,
# as a retry is; its parts stay, and the next run resumes from them when the new URL names the same object
# (the engine compares size and validator). Not while it runs: the URL would change under its transfer.
NEW_URL = Transition(
    "new url",
    "given a new URL",
    frozenset({JobState.QUEUED, JobState.PAUSED, JobState.FAILED, JobState.CANCELED}),
    JobState.QUEUED,
    MappingProxyType({"error": None, "verdict": None}),
)


def new_url_event(before: str, url: str) -> str:
    """The history event of NEW_URL: the move, and the new URL without its secrets (a signed URL's query
    is its credential; the queue's row is the one place the whole URL is kept)."""
    return f"{NEW_URL.event(before)}: {redact(url)}"


@dataclass(frozen=True)
class Outcome:
    """What an action did to one job: moved (and the state it left), or the line the user is told."""

    job_id: int
    before: JobState
    moved: bool
    message: str | None = None


def clamp_concurrency(n: int) -> int:
    return max(MIN_CONCURRENCY, min(MAX_CONCURRENCY, n))
