"""The engine asks a caller's ConnectionBudget before each request and gives it back when the response is
done with; a Retry-After holds the origin. A counting budget of the test's own (thread-safe, as the
engine's callers' are) stands in for the runner's, against the fault server."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Hashable

import pytest

from getm_tui.engine import Options, download
from getm_tui.engine.politeness import origin_of
from tests.helpers.faultserver import FaultServer

MiB = 1024 * 1024


class CountingBudget:
    """At most `cap` keys hold a connection at once; records the most that did, and every hold."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.lock = threading.Lock()
        self.holding: set[Hashable] = set()
        self.peak = 0
        self.origins: set[str] = set()
        self.holds: list[tuple[str, float]] = []

    def take(self, origin: str, key: Hashable) -> float:
        with self.lock:
            self.origins.add(origin)
            if key not in self.holding:
                if len(self.holding) >= self.cap:
                    return 0.01
                self.holding.add(key)
                self.peak = max(self.peak, len(self.holding))
            return 0.0

    def give(self, origin: str, key: Hashable) -> None:
        with self.lock:
            self.holding.discard(key)

    def hold(self, origin: str, seconds: float) -> None:
        with self.lock:
            self.holds.append((origin, seconds))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_origin_of_spells_out_the_port_and_lowercases():
    assert origin_of("HTTP://Example.COM/a?b") == "http://example.com:80"
    assert origin_of("https://h:8443/x") == "https://h:8443"
    assert origin_of("http://[::1]:9/x") == "http://[::1]:9"


@pytest.mark.slow
def test_parts_wait_for_a_connection_of_the_budget(fault_server: FaultServer, tmp_path):
    data = random.Random(3).randbytes(6 * MiB + 17)
    url = fault_server.add("/big.bin", data, rate_limit=8 * MiB)
    budget = CountingBudget(2)
    opts = Options(concurrency=6, part_size=1 * MiB, budget=budget)
    result = download(url, str(tmp_path), options=opts)
    with open(result.path, "rb") as f:
        assert _sha(f.read()) == _sha(data)
    assert budget.peak == 2  # six parts asked, two at a time
    assert not budget.holding  # every connection came back
    assert budget.origins == {origin_of(url)}


@pytest.mark.slow
def test_a_retry_after_holds_the_origin(fault_server: FaultServer, tmp_path):
    data = random.Random(4).randbytes(100_000)
    url = fault_server.add("/small.bin", data, statuses=[503], retry_after="1")
    budget = CountingBudget(1)
    result = download(url, str(tmp_path), options=Options(budget=budget))
    with open(result.path, "rb") as f:
        assert f.read() == data
    assert budget.holds == [(origin_of(url), 1.0)]
    assert not budget.holding
