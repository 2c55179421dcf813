"""What a download reports while it runs, for front ends: a Progress snapshot every tenth of a second.

A snapshot crosses processes (a job host sends it to its supervisor, which sends its segments on to front
ends), so it holds plain values only: segments are bare tuples, their states string literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from getm_tui.engine.plan import Part, PartState

# Seconds between two snapshots a download reports.
INTERVAL = 0.1

# A part's state as front ends show it: a pending part that has failed before is retrying.
SegmentState = PartState | Literal["retrying"]
# (start, length or -1 when unknown, bytes done, state) of one part.
Segment = tuple[int, int, int, SegmentState]


@dataclass
class Progress:
    """A snapshot for front ends; cheap to build, plain values only."""

    size: int | None
    done: int
    connections: int
    parts_total: int
    parts_done: int
    segments: list[Segment]
    retries: int
    elapsed: float

    @classmethod
    def of_parts(
        cls, parts: list[Part], size: int | None, connections: int, retries: int, elapsed: float
    ) -> Progress:
        """The snapshot of a download in these parts."""
        segments = [
            (p.start, -1 if p.end is None else p.end - p.start, p.done, _segment_state(p)) for p in parts
        ]
        return cls(
            size=size,
            done=sum(p.done for p in parts),
            connections=connections,
            parts_total=len(parts),
            parts_done=sum(1 for p in parts if p.state == "done"),
            segments=segments,
            retries=retries,
            elapsed=elapsed,
        )


def _segment_state(p: Part) -> SegmentState:
    if p.state == "pending" and p.attempts:
        return "retrying"
    return p.state
