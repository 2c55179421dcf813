"""Shared-memory blocks for slots, and the budget they come out of.

A block is a file created in /dev/shm and unlinked at once: worker processes receive its descriptor over
their pipe (SCM_RIGHTS) and map it. Nothing of ours is ever left in /dev/shm, whatever kills us (SIGKILL
included), yet the memory still counts against /dev/shm's size, so the budget follows its free space. The
pages are reserved with posix_fallocate: a full tmpfs then fails here with ENOSPC instead of killing a
process with SIGBUS in the middle of a transfer.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
from dataclasses import dataclass
from typing import NamedTuple

log = logging.getLogger(__name__)

SHM_DIR = "/dev/shm"
KiB = 1024
MiB = 1024 * KiB
# Share of free /dev/shm one block may take, and a ceiling so one job does not take everything.
BUDGET_SHARE = 0.5
BUDGET_CEILING = 1024 * MiB
MIN_SLOT = 256 * KiB


def shm_free(directory: str = SHM_DIR) -> int:
    """Bytes free in /dev/shm (or the temp dir standing in for it)."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def shm_dir() -> str:
    return SHM_DIR if os.path.isdir(SHM_DIR) else os.environ.get("TMPDIR", "/tmp")


@dataclass(frozen=True)
class SlotPlan:
    """How a job's block is cut: `count` slots of `size` bytes, feeding `connections` connections."""

    size: int
    count: int
    connections: int
    shrunk: bool

    @property
    def total(self) -> int:
        return self.size * self.count


def plan_slots(wanted_size: int, connections: int, extra: int, budget: int) -> SlotPlan:
    """Fit `connections + extra` slots of `wanted_size` into the budget, shrinking slots, then connections.

    Slots are shrunk before connections because more connections are what make a fast download;
    below MIN_SLOT per slot the request overhead would dominate, so connections go instead.
    """
    count = connections + extra
    if count * wanted_size <= budget:
        return SlotPlan(wanted_size, count, connections, False)
    size = (budget // count) // (64 * KiB) * (64 * KiB)
    if size >= MIN_SLOT:
        return SlotPlan(min(size, wanted_size), count, connections, True)
    count = max(2, budget // MIN_SLOT)
    connections = max(1, min(connections, count - 1))
    return SlotPlan(MIN_SLOT, count, connections, True)


class Block:
    """One mapped, already-unlinked shared-memory file; `fd` is what workers receive."""

    def __init__(self, size: int, directory: str | None = None) -> None:
        directory = directory or shm_dir()
        path = os.path.join(directory, f"getm-{os.getpid()}-{os.urandom(6).hex()}")
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)
        try:
            try:
                os.posix_fallocate(self.fd, 0, size)
            except OSError as e:
                if e.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                    os.ftruncate(self.fd, size)
                else:
                    raise
            self.size = size
            self.map = mmap.mmap(self.fd, size)
            self.view = memoryview(self.map)
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.fd < 0:
            return
        self.view.release()
        try:
            self.map.close()
        except BufferError:
            # A caller still holds a memoryview; the mapping goes when it is collected.
            log.debug("shared-memory block still referenced at close")
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> Block:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def allocate(
    wanted_size: int, connections: int, extra: int, limit: int | None = None
) -> tuple[Block, SlotPlan]:
    """A block for a job, sized by the budget; on ENOSPC (someone else filled /dev/shm) halve and retry."""
    directory = shm_dir()
    budget = int(shm_free(directory) * BUDGET_SHARE)
    budget = min(budget, limit or BUDGET_CEILING)
    plan = plan_slots(wanted_size, connections, extra, budget)
    warned = False
    while True:
        if plan.shrunk and not warned:
            log.warning(
                "little shared memory free in %s (%d MiB usable): %d slots of %d KiB, %d connection(s)",
                directory,
                budget // MiB,
                plan.count,
                plan.size // KiB,
                plan.connections,
            )
            warned = True
        try:
            return Block(plan.total, directory), plan
        except OSError as e:
            if e.errno != errno.ENOSPC or plan.total <= 2 * MIN_SLOT:
                raise
            budget = plan.total // 2
            plan = plan_slots(wanted_size, connections, extra, budget)
            plan = SlotPlan(plan.size, plan.count, plan.connections, True)


class Ring(NamedTuple):
    """Where a part's bytes wait in a block: its position p at `offset + p % size`.

    A part that fits its slot never wraps; a stream larger than its ring does, as its reader frees room.
    """

    offset: int
    size: int

    def views(self, block: memoryview, a: int, b: int) -> list[tuple[memoryview, int]]:
        """Views of positions [a, b) (two when they wrap), each with the position it starts at."""
        out = []
        while a < b:
            ra = a % self.size
            n = min(b - a, self.size - ra)
            at = self.offset + ra
            out.append((block[at : at + n], a))
            a += n
        return out
