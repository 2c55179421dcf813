"""What one download is asked to do: Options, and how download()'s keyword arguments combine with them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Final, Literal, Protocol

from getm_tui.engine import plan, retry
from getm_tui.engine.politeness import ConnectionBudget
from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.http_session import HTTPSettings

# Who makes a finished file durable (its bytes, then its name, on disk) before it counts as done:
# "here": download() does, with an fsync of the file and of its directory, before it returns;
# "caller": the caller does, one sync for many files (the runner's group commit), and download() only
#   writes the file back while it downloads so that sync has little left to do;
# "off": nobody (scratch disks): a power cut may lose files that were reported complete.
Sync = Literal["here", "caller", "off"]

# Who moves a finished file to its name: "here": download() does, after saving the finished record;
# "caller": download() returns with the verified file still at its partial name and the finished record
#   in Result.pending: the caller keeps that record where the store keeps it, then calls target.commit
#   (the runner does both away from the job's thread, so the thread takes its next job at once).
Commit = Literal["here", "caller"]


class Live(Protocol):
    """What a front end may change while a download runs, read on every turn of its loop."""

    @property
    def concurrency(self) -> int: ...

    @property
    def rate_limit(self) -> float | None: ...


@dataclass
class Options:
    """Knobs of one download; the queue's settings map onto these."""

    concurrency: int | None = 4
    part_size: int = plan.DEFAULT_PART_SIZE
    retries: int = 6
    retry_base: float = retry.BASE_DELAY  # seconds: the first backoff window, doubled after each failure
    retry_cap: float = retry.MAX_DELAY  # seconds: the largest window
    overwrite: bool = False
    shm_limit: int | None = None
    rate_limit: float | None = None
    max_restarts: int = 3
    # With no checksum known, test a file named like an archive (.gz, .zip, .tar.*...) by decompressing it.
    check_archives: bool = True
    sync: Sync = "here"
    commit: Commit = "here"
    http: HTTPSettings = field(default_factory=HTTPSettings)
    # How s3:// and gs:// URLs authenticate (the cloud's credential chain, or anonymously).
    access: Access = field(default_factory=Access)
    # Read on every turn of the download loop, so a front end can change them while the download runs.
    live: Live | None = None
    # Asked before each request, and told when its response is done with (politeness.py): how many
    # connections to one origin a caller's downloads keep open at once, and a Retry-After held by all.
    budget: ConnectionBudget | None = None

    def current_rate_limit(self) -> float | None:
        """Bytes per second this download may use now (a front end may change it while it runs)."""
        if self.live is not None:
            return self.live.rate_limit
        return self.rate_limit


class Unset(enum.Enum):
    """The value of a keyword argument that was not given (None means something for `concurrency`)."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"  # as help() shows the default


UNSET: Final = Unset.UNSET
NotGiven = Literal[Unset.UNSET]


def with_keywords(
    options: Options | None,
    concurrency: int | None | NotGiven = UNSET,
    overwrite: bool | NotGiven = UNSET,
    live: Live | None = None,
) -> Options:
    """A copy of `options` (Options() when None) with the keyword arguments download() or urlopen() was
    given. One that was not given leaves the value the Options hold: `download(url, options=Options(
    concurrency=8))` runs 8 connections."""
    opts = replace(options or Options())
    if concurrency is not UNSET:
        opts.concurrency = concurrency
    if overwrite is not UNSET:
        opts.overwrite = overwrite
    if live is not None:
        opts.live = live
    return opts
