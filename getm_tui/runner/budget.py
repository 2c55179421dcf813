"""How many connections each running job may use: the queue counts connections, not jobs.

A limit on jobs (`max_active`) that suits big files (a few at once, several connections each) starves a
queue of small ones, whose cost is the wait for each reply; one that suits small files lets big files
open connections (and fetch processes, and buffers) by the dozen. So many jobs run at once, and
`max_connections` bounds what they use: a small file (one request) and a job not yet probed count one
connection each; big files share what is left, each up to the concurrency it asks for and at least one.
A front end's change of a job's concurrency is what that job asks for; the share may give it less.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Kind = Literal["unknown", "small", "big"]  # before the probe; one request; ranges over several connections


def kind_of(size: int | None, ranges: bool, one_request: int) -> Kind:
    """What a probe says of a job: one request when the file fits in `one_request` bytes or the server
    cannot do ranges; otherwise several connections can share it."""
    return "small" if not ranges or (size is not None and size <= one_request) else "big"


def big_shares(wanted: Mapping[int, int], kinds: Mapping[int, Kind], budget: int) -> dict[int, int]:
    """Connections for each big job of `wanted` (job id -> the concurrency it asks for): the budget left
    after one per other job, shared out so that a job asking for less than an even share leaves the rest
    to the others."""
    big = sorted((j for j in wanted if kinds.get(j) == "big"), key=lambda j: wanted[j])
    left = budget - (len(wanted) - len(big))
    shares: dict[int, int] = {}
    for i, job in enumerate(big):
        share = max(1, min(wanted[job], left // (len(big) - i)))
        shares[job] = share
        left -= share
    return shares


def first_share(wanted: int, in_use: int, budget: int) -> int:
    """Connections for a job that starts now, when the running ones use `in_use`: what it asks for if
    the budget has that much left, else what is left, and at least one."""
    return max(1, min(wanted, budget - in_use))
