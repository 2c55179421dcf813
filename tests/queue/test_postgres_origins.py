"""The fleet's per-origin slots and holds (queue/postgres_origins.py): a cap no two runners exceed
together, slots that come back when their runner stops beating, and holds every runner sees. Against the
session's real server."""

from __future__ import annotations

import pytest

from getm_tui.queue.interface import JobQueue, OriginSlots
from tests.helpers.runner_util import wait_for
from tests.queue.test_postgres import runner

pytestmark = pytest.mark.slow  # a PostgreSQL database each

ORIGIN = "http://example.org:80"


def slots(q: JobQueue) -> OriginSlots:
    origins = q.origin_slots()
    assert origins is not None
    return origins


def test_two_runners_never_hold_more_than_the_cap_together(postgres_url):
    with runner(postgres_url) as a, runner(postgres_url) as b:
        assert sorted(slots(a).claim_slots(ORIGIN, 3, 2)) == [0, 1]
        assert slots(b).claim_slots(ORIGIN, 3, 3) == [2]  # one was left
        assert slots(b).claim_slots(ORIGIN, 3, 1) == []
        assert slots(a).claim_slots("http://other.org:80", 3, 1) == [0]  # per origin
        slots(a).release_slots(ORIGIN, [1])
        assert slots(b).claim_slots(ORIGIN, 3, 2) == [1]


def test_the_slots_of_a_runner_that_stops_beating_come_back(postgres_url):
    with runner(postgres_url, lease_timeout=0.5) as a, runner(postgres_url) as b:
        assert slots(a).claim_slots(ORIGIN, 1, 1) == [0]
        assert slots(b).claim_slots(ORIGIN, 1, 1) == []
        # No heartbeat from a: once its lease_timeout has passed, its slot is b's to take.
        assert wait_for(lambda: slots(b).claim_slots(ORIGIN, 1, 1), 10) == [0]


def test_a_runner_that_leaves_gives_its_slots_back(postgres_url):
    with runner(postgres_url) as a, runner(postgres_url) as b:
        assert slots(a).claim_slots(ORIGIN, 1, 1) == [0]
        a.leave_fleet()
        assert slots(b).claim_slots(ORIGIN, 1, 1) == [0]


def test_a_hold_refuses_every_runner_and_is_seen_by_all(postgres_url):
    with runner(postgres_url) as a, runner(postgres_url) as b:
        slots(a).hold_origin(ORIGIN, 30.0)
        assert slots(b).claim_slots(ORIGIN, 2, 1) == []
        assert slots(a).claim_slots(ORIGIN, 2, 1) == []
        [(origin, left)] = slots(b).origin_holds().items()
        assert origin == ORIGIN and 25.0 < left <= 30.0
        assert slots(b).claim_slots("http://other.org:80", 2, 1) == [0]


def test_a_queue_file_has_no_fleet_slots(tmp_path):
    from getm_tui.queue.interface import open_queue

    with open_queue(str(tmp_path)) as q:
        assert q.origin_slots() is None
