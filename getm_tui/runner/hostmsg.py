"""Messages between the supervisor and its job hosts (jobhost.py), as NamedTuples: typed where they are
read, and pickled as small as the bare tuples they replace (one goes with every progress report)."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from getm_tui.engine import Progress
from getm_tui.queue.records import Finished, Job

# -- host <- supervisor -----------------------------------------------------------------------------


class Run(NamedTuple):
    job: Job
    record: dict[str, Any] | None  # its resume record as the queue holds it
    concurrency: int
    rate_limit: float | None


class Control(NamedTuple):
    """What a front end changed while the job runs."""

    job_id: int
    concurrency: int
    rate_limit: float | None


class Cancel(NamedTuple):
    job_id: int


# Saved's error when a claim names a file another running job holds (the engine takes the next free name).
NAME_TAKEN = "the name is another job's"


class Saved(NamedTuple):
    """The answer to a Save: the record is written (error None), or why not."""

    job_id: int
    error: str | None


class Stop(NamedTuple):
    pass


class Batch(NamedTuple):
    """What one turn of the supervisor's loop has for one host, in one write."""

    messages: list[ToHost]


class Granted(NamedTuple):
    """Connections to an origin the host asked for (Ask), now its own until it gives them back."""

    origin: str
    n: int


class Held(NamedTuple):
    """The origin asked us to wait (a Retry-After heard by any job, or any runner of the fleet)."""

    origin: str
    seconds: float


ToHost = Run | Control | Cancel | Saved | Stop | Batch | Granted | Held

# -- host -> supervisor -----------------------------------------------------------------------------


class Save(NamedTuple):
    job_id: int
    record: dict[str, Any]


class Probe(NamedTuple):
    job_id: int
    path: str
    size: int | None
    info: dict[str, Any]


class Report(NamedTuple):
    job_id: int
    progress: Progress


class Log(NamedTuple):
    job_id: int | None
    level: int
    text: str


EndKind = Literal["done", "failed", "mismatch", "cancelled"]


class End(NamedTuple):
    """How a job ended: done (payload: what was saved), failed or mismatch (payload: the error), or
    cancelled (no payload). `reason` names the kind of failure for metrics (checksum, archive, http_404,
    no_space...). `unsynced`: the file of a done job is not known to be on disk yet, and the supervisor
    syncs it before it records the job done (runner/commit.py). `pending`: the finished record of a file
    still at its partial name (engine Options.commit "caller"): the supervisor writes it, then the group
    commit moves the file to its name, so the job's thread waits for neither."""

    job_id: int
    kind: EndKind
    payload: Finished | str | None
    reason: str = ""
    unsynced: bool = False
    pending: dict[str, Any] | None = None


class Ask(NamedTuple):
    """The host's jobs wait for `n` more connections to the origin (max_connections_per_host)."""

    origin: str
    n: int


class Give(NamedTuple):
    """The host is done with `n` connections to the origin it was granted."""

    origin: str
    n: int


class Hold(NamedTuple):
    """A response from the origin said to wait this long (Retry-After)."""

    origin: str
    seconds: float


FromHost = Save | Probe | Report | Log | End | Ask | Give | Hold


class Several(NamedTuple):
    """What a host says in one write (runner/outbox.py): news that waited, then what could not wait."""

    messages: list[FromHost]
