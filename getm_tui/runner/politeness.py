"""The supervisor's side of being polite to an origin: it grants its job hosts connections to each
origin (max_connections_per_host) and holds an origin back from all of them when one job heard a
Retry-After (the hosts' side is hostbudget.py).

Alone on a queue, a runner grants up to the cap itself. In a fleet the cap is the fleet's: the runner
holds some of the origin's slots in the database (queue/postgres_origins.py) and grants its hosts no more
than it holds. It claims slots while its hosts wait for more than it holds, and gives back those nobody
here needs; a free slot it has held for SHARE_AFTER goes back too, so a runner with a long queue on one
origin does not keep the others from it for ever. A hold is written to the database (in the same
transaction that gives back the slot of the request that heard it, so nobody takes that slot in
between); the claim refuses slots of a held origin, and every runner hears of the hold (NOTIFY) and stops
its hosts at once, with no cap too.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING

from getm_tui.queue.errors import QueueUnreachable
from getm_tui.queue.interface import OriginSlots
from getm_tui.runner import hostmsg as H
from getm_tui.runner.hostio import after_commit
from getm_tui.runner.jobhost import JobHost

if TYPE_CHECKING:
    from getm_tui.runner.supervisor import Supervisor

SHARE_AFTER = 1.0  # seconds a runner keeps a fleet slot before a free moment gives it back to the fleet
CLAIM_EVERY = 0.05  # seconds between claims of one origin's slots while hosts wait and the fleet has none


class Origins:
    """Per origin: the hosts' asks in order, the connections each host holds, holds, and (in a fleet)
    the database slots this runner holds."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.slots: OriginSlots | None = None  # the fleet's, once the runner joined one
        self._asks: dict[str, collections.deque[JobHost]] = collections.defaultdict(collections.deque)
        self._in_use: dict[str, collections.Counter[JobHost]] = collections.defaultdict(collections.Counter)
        self._holds: dict[str, float] = {}  # origin -> time.monotonic() when it may be asked again
        self._mine: dict[str, dict[int, float]] = collections.defaultdict(dict)  # slot -> claimed at
        self._next_claim: dict[str, float] = {}
        self._to_write: list[tuple[str, float]] = []  # holds the fleet has not been told of yet

    @property
    def busy(self) -> bool:
        """Whether a step has anything to do (a fleet's turn costs a transaction)."""
        return bool(self._asks or self._mine or self._to_write)

    def ask(self, host: JobHost, origin: str, count: int) -> None:
        self._asks[origin].extend([host] * count)

    def give(self, host: JobHost, origin: str, count: int) -> None:
        used = self._in_use[origin]
        used[host] = max(0, used[host] - count)
        if not used[host]:
            del used[host]

    def hold(self, origin: str, seconds: float, hosts: list[JobHost]) -> None:
        """A host heard a Retry-After: hold the origin here, and (in a fleet) everywhere."""
        self.learn({origin: seconds}, hosts)
        if self.slots is not None:
            self._to_write.append((origin, seconds))

    def learn(self, holds: dict[str, float], hosts: list[JobHost]) -> None:
        """Holds heard of (from a host, or the fleet's database): every host is told of a longer one."""
        now = time.monotonic()
        for origin, seconds in holds.items():
            if now + seconds > self._holds.get(origin, 0.0):
                self._holds[origin] = now + seconds
                for host in hosts:
                    host.send(H.Held(origin, seconds))

    def host_lost(self, host: JobHost) -> None:
        for origin, asks in self._asks.items():
            self._asks[origin] = collections.deque(h for h in asks if h is not host)
        for used in self._in_use.values():
            used.pop(host, None)

    def step(self, now: float, db: bool) -> list[tuple[JobHost, H.Granted]]:
        """Grant what may be granted now; in a fleet with its database at hand (`db`), write the holds
        heard of, give back the slots not needed, and claim those waited for, first."""
        if self.slots is not None and db:
            for origin, seconds in self._to_write:
                self.slots.hold_origin(origin, seconds)
            self._to_write.clear()
        grants: collections.Counter[tuple[JobHost, str]] = collections.Counter()
        for origin in list(self._asks.keys() | self._mine.keys()):
            asks = self._asks[origin]
            used = sum(self._in_use[origin].values())
            held = self._holds.get(origin, 0.0) > now
            limit = self.cap
            if self.slots is not None:
                limit = self._fleet_slots(origin, used, 0 if held else len(asks), now, db)
            while asks and not held and used < limit:
                host = asks.popleft()
                self._in_use[origin][host] += 1
                grants[host, origin] += 1
                used += 1
            if not asks and not used and not self._mine.get(origin):
                for table in (self._asks, self._in_use, self._mine):
                    table.pop(origin, None)
        return [(host, H.Granted(origin, n)) for (host, origin), n in grants.items()]

    def _fleet_slots(self, origin: str, used: int, waiting: int, now: float, db: bool) -> int:
        """How many connections to the origin this runner may have open: the fleet's slots it holds,
        after giving back the spare ones (and a long-held free one) and claiming what is waited for."""
        mine = self._mine[origin]
        assert self.slots is not None
        if not db:
            return len(mine)  # the database is away: what is held is held (it expires with the beat)
        free = len(mine) - used
        oldest = sorted(mine, key=lambda s: mine[s])
        long_held = sum(1 for s in oldest if now - mine[s] >= SHARE_AFTER)
        give_back = max(free - waiting, min(free, long_held))
        if give_back > 0:
            self.slots.release_slots(origin, oldest[:give_back])
            for s in oldest[:give_back]:
                del mine[s]
        elif waiting > free and len(mine) < self.cap and now >= self._next_claim.get(origin, 0.0):
            self._next_claim[origin] = now + CLAIM_EVERY
            for s in self.slots.claim_slots(origin, self.cap, min(waiting - free, self.cap - len(mine))):
                mine[s] = now
        return len(mine)


def from_host(sup: Supervisor, host: JobHost, msg: H.Ask | H.Give | H.Hold) -> None:
    if isinstance(msg, H.Ask):
        sup.origins.ask(host, msg.origin, msg.n)
    elif isinstance(msg, H.Give):
        sup.origins.give(host, msg.origin, msg.n)
    else:
        sup.origins.hold(msg.origin, msg.seconds, [h for h in sup._hosts if h.alive])


def polite_turn(sup: Supervisor, now: float) -> None:
    """One turn of the origins' bookkeeping: in a fleet, one transaction, and the grants after its
    commit (a slot is not the runner's until then)."""
    origins = sup.origins
    if not origins.busy:
        return
    if origins.slots is None or sup._outage is not None:
        for host, grant in origins.step(now, db=False):
            host.send(grant)
        return
    try:
        with sup._turn():
            for host, grant in origins.step(now, db=True):
                after_commit(sup, host, grant)
    except QueueUnreachable as e:
        sup._go_offline(e, [])


def heard_holds(sup: Supervisor) -> None:
    """Another runner wrote a hold: read the holds, and tell this runner's hosts."""
    notices = sup._notices
    if notices is None or not notices.held or sup.origins.slots is None:
        return
    notices.held = False
    sup.origins.learn(sup.origins.slots.origin_holds(), [h for h in sup._hosts if h.alive])
