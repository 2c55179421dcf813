"""runner/hostbudget.py: a host's requests wait for connections its supervisor grants, and the host asks
for and gives back only what the counts say (messages recorded as the supervisor would receive them)."""

from __future__ import annotations

from getm_tui.runner import hostmsg as H
from getm_tui.runner.hostbudget import HostBudget

ORIGIN = "http://example.org:80"


def test_a_request_waits_for_a_grant_and_gives_it_back() -> None:
    sent: list[H.FromHost] = []
    budget = HostBudget(2, sent.append)
    assert budget.take(ORIGIN, "a") > 0
    assert budget.take(ORIGIN, "a") > 0  # asking again asks the supervisor nothing more
    assert sent == [H.Ask(ORIGIN, 1)]
    budget.granted(ORIGIN, 1)
    assert budget.take(ORIGIN, "a") == 0.0
    budget.give(ORIGIN, "a")
    assert sent == [H.Ask(ORIGIN, 1), H.Give(ORIGIN, 1)]


def test_a_grant_nobody_waits_for_any_more_goes_back() -> None:
    sent: list[H.FromHost] = []
    budget = HostBudget(2, sent.append)
    assert budget.take(ORIGIN, "a") > 0
    budget.give(ORIGIN, "a")  # cancelled while it waited
    budget.granted(ORIGIN, 1)
    assert sent == [H.Ask(ORIGIN, 1), H.Give(ORIGIN, 1)]
    assert budget.take(ORIGIN, "b") > 0  # nothing kept: b asks for its own
    assert sent[-1] == H.Ask(ORIGIN, 1)


def test_a_hold_refuses_the_origin_with_no_cap_too() -> None:
    sent: list[H.FromHost] = []
    budget = HostBudget(0, sent.append)
    assert budget.take(ORIGIN, "a") == 0.0  # no cap: nothing asked
    budget.give(ORIGIN, "a")
    assert sent == []
    budget.hold(ORIGIN, 30.0)
    assert sent == [H.Hold(ORIGIN, 30.0)]
    assert 29.0 < budget.take(ORIGIN, "b") <= 30.0
    assert budget.take("http://other.org:80", "c") == 0.0
