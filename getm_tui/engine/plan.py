"""Cutting a file into parts.

Parts are at most `part_size` and small enough that every connection has work (size / connections), but
not below `min_part` (aria2 splits down to 1 MiB): below that the per-request cost outweighs the gain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MiB
MIN_PART = 1 * MiB

# Where a part is: waiting for a worker (or for its retry to fall due), being fetched, or complete.
PartState = Literal["pending", "active", "done"]


@dataclass
class Part:
    """A byte range of the file fetched by one request at a time (retries continue where it stopped)."""

    index: int
    start: int
    end: int | None
    done: int = 0  # bytes of the part written (or handed out), contiguous from its start
    kept: int = 0  # of those, bytes already on disk from an earlier run (not in shared memory)
    crc: int = 0  # crc32c of the first `done` bytes
    hashed: int = 0  # bytes fed to the ordered hashers
    attempts: int = 0
    failed_at: int = 0  # `done` at the last failure: the retry count resets after enough progress since
    state: PartState = "pending"
    not_before: float = 0.0
    slot: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def length(self) -> int | None:
        return None if self.end is None else self.end - self.start

    @property
    def complete(self) -> bool:
        return self.end is not None and self.done >= self.end - self.start


def part_length(
    size: int, connections: int, part_size: int = DEFAULT_PART_SIZE, min_part: int = MIN_PART
) -> int:
    per_connection = -(-size // max(1, connections))
    return max(1, min(part_size, max(min_part, per_connection)))


def split(size: int, length: int) -> list[Part]:
    if size == 0:
        return [Part(0, 0, 0)]
    return [Part(i, start, min(size, start + length)) for i, start in enumerate(range(0, size, length))]
