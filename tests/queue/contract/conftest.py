"""The backends the contract suite runs on. A new backend is one entry in BACKENDS: a function that opens a
connection to a fresh, empty queue named by the test's temporary directory (every call for the same
directory reaches the same queue)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from getm_tui.queue.interface import JobQueue, open_queue


def _sqlite(tmp_path: Path) -> JobQueue:
    return open_queue(str(tmp_path / "data"))


BACKENDS: dict[str, Callable[[Path], JobQueue]] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connect(backend: str, tmp_path: Path) -> Callable[[], JobQueue]:
    """Open another connection to the test's queue (as another process or thread would)."""
    return lambda: BACKENDS[backend](tmp_path)


@pytest.fixture
def q(connect: Callable[[], JobQueue]) -> Iterator[JobQueue]:
    with connect() as queue:
        yield queue
