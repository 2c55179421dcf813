"""Being polite to an origin: a budget of connections the caller hands the engine, asked before each
request and told when it ends, and told when the origin asks us to wait (a Retry-After).

The engine knows nothing of who else talks to the origin (other jobs, other processes, other hosts of a
fleet): the caller's budget does. So the engine only asks, per request, under a key of its own (a probe,
a part of a transfer), and gives the connection back when that request's response is done with; a
refusal that names a time to wait holds the whole origin back, not only the request that got it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from getm_tui.engine.errors import Cancelled, Retryable

T = TypeVar("T")

DEFAULT_PORTS = {"http": 80, "https": 443}


class ConnectionBudget(Protocol):
    """Who may open a connection to an origin now. Thread-safe: a caller's jobs share one."""

    def take(self, origin: str, key: Hashable) -> float:
        """Ask for a connection to `origin` for `key`: 0.0 when `key` holds one now (until `give`),
        else the seconds to wait before asking again (the rest of a hold, or a short wait for a slot)."""
        ...

    def give(self, origin: str, key: Hashable) -> None:
        """`key`'s request is over (its connection is free for another), or it stops waiting for one."""
        ...

    def hold(self, origin: str, seconds: float) -> None:
        """The origin asked us to wait this long (Retry-After): nobody opens a connection to it meanwhile."""
        ...


def origin_of(url: str) -> str:
    """scheme://host:port of a URL (the port spelled out), lowercased: what a server's limits are per."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def wait_for(budget: ConnectionBudget, origin: str, key: Hashable, cancel: threading.Event | None) -> None:
    """Take a connection for `key`, waiting as long as the budget says (Cancelled when cancelled)."""
    while True:
        wait = budget.take(origin, key)
        if wait <= 0:
            return
        if cancel is None:
            time.sleep(wait)
        elif cancel.wait(wait):
            budget.give(origin, key)
            raise Cancelled("cancelled")


def refused(budget: ConnectionBudget | None, url: str, error: BaseException) -> None:
    """A request was refused: when the origin said how long to wait, hold all of it back that long."""
    if budget is not None and isinstance(error, Retryable) and error.retry_after:
        budget.hold(origin_of(url), error.retry_after)


class Lease:
    """One request's connection from a budget (none without a budget): taken before the request, given
    back once (`end`) when its response is done with."""

    def __init__(self, budget: ConnectionBudget | None, url: str) -> None:
        self.budget = budget
        self.origin = origin_of(url)
        self._held = False

    def call(self, fn: Callable[[], T], cancel: threading.Event | None) -> T:
        """fn() (a request) on a connection of the budget; on a failure the connection is given back,
        and a refusal with Retry-After holds the origin first, so nobody takes it in between."""
        if self.budget is not None and not self._held:
            wait_for(self.budget, self.origin, self, cancel)
            self._held = True
        try:
            return fn()
        except BaseException as e:
            if self.budget is not None:
                refused(self.budget, self.origin, e)
            self.end()
            raise

    def end(self) -> None:
        if self.budget is not None and self._held:
            self._held = False
            self.budget.give(self.origin, self)


class PartConnections:
    """The connections of one transfer's parts from a budget (none asked for without one), each part's
    under a key of its own; what is still asked for or held when the transfer closes goes back."""

    def __init__(self, budget: ConnectionBudget | None, url: str) -> None:
        self.budget = budget
        self.origin = origin_of(url)
        self._asked: set[int] = set()

    def take(self, index: int) -> float:
        """0.0 when part `index` may send its request now, else the seconds before asking again."""
        if self.budget is None:
            return 0.0
        self._asked.add(index)
        return self.budget.take(self.origin, (id(self), index))

    def give(self, index: int) -> None:
        if self.budget is not None and index in self._asked:
            self._asked.discard(index)
            self.budget.give(self.origin, (id(self), index))

    def hold(self, seconds: float | None) -> None:
        if self.budget is not None and seconds:
            self.budget.hold(self.origin, seconds)

    def close(self) -> None:
        for index in list(self._asked):
            self.give(index)
