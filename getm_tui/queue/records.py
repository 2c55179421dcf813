"""What the queue holds and hands out, whatever the backend: a job, what `add` asks for, a history event,
and the small records the supervisor and the front ends read. Plain types that pickle small: a job
crosses to its host with every run, and front ends build thousands of them per screen."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict
from urllib.parse import unquote

from getm_tui.engine.urls import name_from_url, redact
from getm_tui.queue.states import JobState, Verdict


class _Required(TypedDict):
    url: str
    directory: str


class JobSpec(_Required, total=False):
    """A job to add: `url` and `directory` are required, the rest default (priority 0, the runner's
    concurrency, no checksums, no info)."""

    name: str | None
    priority: int | None
    concurrency: int | None
    checksums: list[str]
    info: dict[str, Any] | None


class Event(NamedTuple):
    """One line of a job's history: when, what kind (command, done, error, warning, info), and the text."""

    at: float
    kind: str
    message: str


class Fingerprint(NamedTuple):
    """Changes when a job is added, removed or changes state or settings; not on progress saves."""

    jobs: int
    top_id: int
    last_update: float


class Extent(NamedTuple):
    """The widest values a job table may have to show: the highest id and the priority range."""

    top_id: int | None
    low_priority: int | None
    high_priority: int | None


class Holder(NamedTuple):
    """The runner of a fleet that holds a running job: its host's name and its process id."""

    host: str
    pid: int


class RunnerInfo(NamedTuple):
    """One runner of a fleet, as `getm-tui runners` shows it. Times are epoch seconds; `rate` is bytes per
    second over its last heartbeat; `status` is alive (its heartbeat is within its lease timeout), lost
    (it stopped beating: killed, its host gone, cut off) or stopped (it left)."""

    id: int
    host: str
    pid: int
    data_dir: str
    started: float
    heartbeat: float
    jobs_held: int
    rate: float
    bytes_done: int
    jobs_done: int
    status: str


class RunningRow(NamedTuple):
    """What the supervisor checks of a job it runs on every look at the queue."""

    state: JobState
    concurrency: int | None


@dataclass(frozen=True)
class Finished:
    """What a job host reports of a finished download, and the queue records."""

    path: str
    size: int
    verdict: Verdict
    crc32c: str
    integrity: list[dict[str, Any]]


@dataclass
class Job:
    id: int
    url: str
    directory: str
    name: str | None
    path: str | None
    state: JobState
    priority: int
    concurrency: int | None
    size: int | None
    bytes_done: int
    checksums: list[str]
    integrity: list[dict[str, Any]] = field(default_factory=list)
    verdict: Verdict | None = None
    attempts: int = 0
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    started: float | None = None
    finished: float | None = None
    runner: Holder | None = None  # the fleet's runner that holds it while it runs
    # Bytes per second over the last seconds while it runs, as its fleet runner wrote it with its progress
    # (None when not known: a queue file's speeds come live from its supervisor instead).
    rate: float | None = None

    @property
    def display_name(self) -> str:
        return display_name_of(self.url, self.name, self.path)

    def public(self) -> dict[str, Any]:
        """The job as `ls --json` shows it: no secrets (the URL is redacted), no resume record."""
        return {
            "id": self.id,
            "name": self.display_name,
            "url": redact(self.url),
            "path": self.path or (os.path.join(self.directory, self.name) if self.name else None),
            "state": self.state,
            "priority": self.priority,
            "concurrency": self.concurrency,
            "size": self.size,
            "bytes_done": self.bytes_done,
            "checksums": self.checksums,
            "integrity": self.integrity,
            "verdict": self.verdict,
            "attempts": self.attempts,
            "error": self.error,
            "insecure": bool(self.info.get("insecure")),  # added with --insecure: no TLS verification
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "runner": self.runner._asdict() if self.runner else None,
            "rate": self.rate,
        }


# What a job table (`ls`) shows of a job, as JobQueue.listing reads it: id, url, name, path, state (the
# stored text), priority, size, bytes_done, verdict, error. A plain tuple: a million of them are read
# for one `ls`, and a Job of every column costs about as much again as the read.
Listed = tuple[int, str, str | None, str | None, str, int, int | None, int, str | None, str | None]

# The columns a job's shown name comes from: a write to one of them renames the job where views look.
NAMED_BY = frozenset(("url", "name", "path"))


def claim_order(job: Job) -> tuple[int, int]:
    """The order a runner claims queued jobs in: by priority (higher first), then age; a claim's
    RETURNING rows come in no order of their own."""
    return -job.priority, job.id


def view_name_of(url: object, name: str | None, path: str | None) -> str:
    """The name views sort and filter by (views.View): the shown name, lowercased; "" for a row without a
    URL (a spec the insert will refuse with the queue's own error)."""
    return display_name_of(url, name, path).lower() if isinstance(url, str) else ""


def display_name_of(url: str, name: str | None, path: str | None) -> str:
    """The name a job is shown by: its file's, once known; else the one asked for; else the URL's."""
    if path:
        return os.path.basename(path)
    if name:
        return name
    return _url_name(url) or redact(url)


_FAST_SCHEMES = ("http", "https", "file")
_PLAIN_STARTS = ("http://", "https://")


def _url_name(url: str) -> str:
    """`name_from_url` without urlsplit's cost, for the scheme://... URLs `validate` lets in."""
    if url.startswith(_PLAIN_STARTS) and "?" not in url and "#" not in url:
        # The most common URL of a long queue, the rule below in fewest steps: its path starts at the
        # first '/' after the host, and its name after the last '/'.
        if url.find("/", url.find("://") + 3) < 0:
            return ""
        name = url[url.rfind("/") + 1 :]
        return unquote(name) if "%" in name else name
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _FAST_SCHEMES:
        return name_from_url(url)
    # As urlsplit does: the fragment starts at the first '#', the query at the first '?' before it, and the
    # path at the first '/' of what is left (the host part cannot hold any of the three).
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    if "/" not in rest:
        return ""
    return unquote(rest.rsplit("/", 1)[1])
