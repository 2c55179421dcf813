"""The supervisor's poll set: the connections with something to read, and only those, as the set changes."""

from __future__ import annotations

import multiprocessing
import time

from getm_tui.runner.readiness import Readiness, readable


def _pairs(n: int) -> list[tuple[object, object]]:
    return [multiprocessing.Pipe(duplex=True) for _ in range(n)]


def test_only_connections_with_a_message_are_ready_and_a_new_set_is_watched():
    pairs = _pairs(3)
    ours = [a for a, _b in pairs]
    r = Readiness()
    assert r.ready(ours, 0) == []
    pairs[1][1].send("hello")
    assert r.ready(ours, 0) == [ours[1]]
    assert readable(ours[1]) and not readable(ours[0])
    assert ours[1].recv() == "hello"
    assert r.ready(ours, 0) == [] and not readable(ours[1])

    # Another set (a host replaced, a front end gone): the old members are no longer watched.
    extra_ours, extra_theirs = multiprocessing.Pipe(duplex=True)
    pairs[0][1].send("not watched now")
    extra_theirs.send("watched")
    assert r.ready([ours[2], extra_ours], 0) == [extra_ours]


def test_a_hung_up_peer_is_ready_and_a_closed_connection_is_left_out():
    (a, b), (c, d) = _pairs(2)
    b.close()
    c.close()
    r = Readiness()
    assert r.ready([a, c], 0) == [a]  # its recv then tells EOF
    assert readable(a) and not readable(c)


def test_ready_waits_for_a_message_up_to_its_timeout():
    ((a, b),) = _pairs(1)
    r = Readiness()
    started = time.monotonic()
    assert r.ready([a], 0.2) == []
    assert time.monotonic() - started >= 0.19
    b.send(1)
    assert r.ready([a], 5.0) == [a]
