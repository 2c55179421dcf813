"""The backends the contract suite runs on. A new backend is one entry in BACKENDS: a function that opens a
connection to a fresh, empty queue named by the test's temporary directory (every call for the same
directory reaches the same queue). A backend on a server names it in that directory (SERVER_FILE), written
by the `connect` fixture from the server's fixture, which starts only for the tests on that backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from getm_tui.queue.interface import JobQueue, open_queue


def _sqlite(tmp_path: Path) -> JobQueue:
    return open_queue(str(tmp_path / "data"))


SERVER_FILE = "server-url"


def _postgres(tmp_path: Path) -> JobQueue:
    return open_queue((tmp_path / SERVER_FILE).read_text())


BACKENDS: dict[str, Callable[[Path], JobQueue]] = {"sqlite": _sqlite, "postgres": _postgres}
SERVERS: dict[str, str] = {"postgres": "postgres_url"}  # the fixture giving a fresh database's URL


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connect(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], JobQueue]:
    """Open another connection to the test's queue (as another process or thread would)."""
    if backend in SERVERS:
        (tmp_path / SERVER_FILE).write_text(str(request.getfixturevalue(SERVERS[backend])))
    return lambda: BACKENDS[backend](tmp_path)


@pytest.fixture
def q(connect: Callable[[], JobQueue]) -> Iterator[JobQueue]:
    with connect() as queue:
        yield queue
