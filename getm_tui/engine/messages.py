"""What a coordinator and its fetch workers say to each other over their pipes.

Each message is pickled on its way, and a worker reports its progress every MiB or tenth of a second, so
they are NamedTuples: typed, and as cheap to pickle as the bare tuples they replace. A Task, sent once per
part, is a frozen dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from getm_tui.engine.sources.base import Signer, Transport
from getm_tui.engine.sources.http_session import HTTPSettings


@dataclass(frozen=True)
class Task:
    """One GET whose body goes into a ring of a block, or (block_id None) through the worker's own buffer.

    Positions are offsets from the start of the part the task belongs to; byte at position p lands at
    block offset `ring_offset + p % ring_size`. A part that fits its slot never wraps, so `credit` only
    matters for streams larger than their ring. Without a block the worker writes the file itself and
    folds the bytes into the part's crc32c, starting from `crc` (that of the part's first `start` bytes).
    """

    task_id: int
    block_id: int | None
    url: str
    headers: tuple[tuple[str, str], ...]
    ring_offset: int
    ring_size: int
    start: int
    end: int | None
    credit: int
    range_first: int | None
    validator: str | None
    rate: float | None = None
    file_id: int | None = None  # when set, the worker writes what it reads at file_offset + position
    file_offset: int = 0
    # The job's own HTTP settings when they differ from the pool's (a job added with --insecure): one
    # pool serves every job of a supervisor, so what is per job travels with the task.
    http: HTTPSettings | None = None
    crc: int = 0
    # Signs the request when the worker sends it (a bucket's credentials, pickled with the task: memory only).
    signer: Signer | None = None
    # Opens the range over a scheme's own connections (FTP, SFTP) instead of an HTTP GET of `url`.
    transport: Transport | None = None

    @property
    def range_end(self) -> int | None:
        """The file offset just past the range this task asks for (None: to the end of the file)."""
        if self.range_first is None or self.end is None:
            return None
        return self.range_first + self.end - self.start


# -- to a worker ----------------------------------------------------------------------------------------


class Attach(NamedTuple):
    """A descriptor follows on the pipe: a shared-memory block of `size` bytes to map, or (None) a file
    to write."""

    block_id: int
    size: int | None


class Detach(NamedTuple):
    block_id: int


class Credit(NamedTuple):
    """A stream's task may fill its ring up to position `upto`: the bytes before it were taken."""

    task_id: int
    upto: int


class Cancel(NamedTuple):
    task_id: int


class Stop(NamedTuple):
    """Exit once idle."""


ToWorker = Task | Attach | Detach | Credit | Cancel | Stop


# -- from a worker --------------------------------------------------------------------------------------
# Each ends with where the task got to (`pos`: bytes from the part's start that are kept, in the ring or
# written) and, for a task without a block, the part's crc32c up to there.


class Fetched(NamedTuple):
    task_id: int
    pos: int
    crc: int | None


class Finished(NamedTuple):
    """The task read its range to the end (or, of unknown length, to the end of the body)."""

    task_id: int
    pos: int
    crc: int | None


class Stopped(NamedTuple):
    """The task ended on a Cancel."""

    task_id: int
    pos: int
    crc: int | None


# Why a task failed, which says what the coordinator does about it: retry the part later, fail the
# download with the message, start over (the file changed, or ranges are not honoured), or stop for space.
Fault = Literal["retry", "fatal", "changed", "noranges", "nospace"]


class Failed(NamedTuple):
    task_id: int
    pos: int
    crc: int | None
    fault: Fault
    message: str
    retry_after: float | None


class Died(NamedTuple):
    """Made by the pool, never sent: the worker's process is gone (with its task, if it had one)."""


FromWorker = Fetched | Finished | Stopped | Failed | Died
