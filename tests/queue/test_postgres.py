"""The PostgreSQL queue beyond the contract: its schema made once by processes starting together, claims
that never give one job to two runners, leases that run out, and the epoch that fences a runner that lost
its job. Against the session's real server (tests/helpers/postgres.py)."""

from __future__ import annotations

import multiprocessing
import os
import select
import socket
import threading

import pytest

from getm_tui.queue import pgsql
from getm_tui.queue.errors import QueueError
from getm_tui.queue.interface import JobQueue, open_queue
from getm_tui.queue.location import is_database, password_of, redact
from getm_tui.queue.postgres import QueueUnreachable
from getm_tui.queue.records import Finished, JobSpec
from getm_tui.queue.states import TRANSITIONS
from tests.helpers.postgres import PASSWORD, PostgresServer
from tests.helpers.runner_util import wait_for

RECORD = {"url": "x", "parts": [[0, 100, 60], [100, 100, 40]]}
THEIRS = {"url": "x", "parts": [[0, 100, 100], [100, 100, 100]]}


def spec(n: int, priority: int = 0) -> JobSpec:
    return {"url": f"https://example.org/{n}.bin", "directory": "/tmp", "priority": priority}


def runner(url: str, lease_timeout: float = 30.0) -> JobQueue:
    q = open_queue(url)
    assert q.join_fleet(f"/tmp/runner-{id(q)}", lease_timeout)
    return q


def _open_and_add(url: str, barrier: threading.Barrier, n: int) -> None:
    barrier.wait()
    with open_queue(url) as q:
        q.add_many([spec(n)])


@pytest.mark.slow
def test_processes_starting_together_make_the_schema_once(postgres_url, postgres_server: PostgresServer):
    fork = multiprocessing.get_context("fork")
    barrier = fork.Barrier(8)
    procs = [fork.Process(target=_open_and_add, args=(postgres_url, barrier, i)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 8
    database = postgres_url.rsplit("/", 1)[1]
    versions = postgres_server.psql("SELECT version FROM getm_meta ORDER BY version", database).split()
    assert versions == [str(v) for v in range(1, len(pgsql.MIGRATIONS) + 1)]
    with open_queue(postgres_url) as q:
        assert len(q.ids()) == 8


def test_runners_claiming_at_once_never_take_the_same_job(postgres_url):
    with open_queue(postgres_url) as q:
        ids = q.add_many([spec(i, priority=i % 3) for i in range(60)])
    runners = [runner(postgres_url) for _ in range(4)]
    taken: list[list[int]] = [[] for _ in runners]
    start = threading.Barrier(len(runners), timeout=60)

    def claim(i: int) -> None:
        start.wait()
        while batch := runners[i].claim_runnable(3):
            taken[i] += [j.id for j in batch]

    threads = [threading.Thread(target=claim, args=(i,), daemon=True) for i in range(len(runners))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads)
    everything = [job_id for got in taken for job_id in got]
    assert sorted(everything) == sorted(ids)  # each job once, none left
    with open_queue(postgres_url) as q:
        assert q.counts()["active"] == 60
    for r in runners:
        r.close()


def test_claims_go_by_priority_then_age_and_skip_what_is_excluded(postgres_url):
    with open_queue(postgres_url) as q:
        low, high, mid = q.add_many([spec(1), spec(2, priority=5), spec(3, priority=1)])
    with runner(postgres_url) as r:
        assert [j.id for j in r.claim_runnable(2, exclude=[high])] == [mid, low]
        [job] = r.claim_runnable(5)
        assert (job.id, job.state) == (high, "active")
        assert r.claim_runnable(5) == []


def test_remove_hands_a_job_a_live_runner_holds_to_it(postgres_url):
    with open_queue(postgres_url) as q:
        held, free = q.add_many([spec(1), spec(2)])
    with runner(postgres_url) as r, open_queue(postgres_url) as q:
        r.claim_runnable(1)
        assert q.claim(free)  # active, but no runner holds it: what a stopped one left
        removals = {x.job_id: x.handed_over for x in q.remove([held, free], delete_file=False)}
        assert removals == {held: True, free: False}
        assert q.get(held).state == "canceled" and free not in q.ids()


@pytest.mark.slow
def test_a_runner_that_stops_renewing_loses_its_jobs_and_is_fenced(postgres_url):
    with open_queue(postgres_url) as q:
        [job] = q.add_many([spec(1)])
    stale = runner(postgres_url, lease_timeout=0.5)
    other = runner(postgres_url)
    assert [j.id for j in stale.claim_runnable(1)] == [job]
    stale.save_resume(job, RECORD)
    assert other.requeue_active() == []  # the lease holds while it runs
    wait_for(lambda: other.requeue_active() == [job])  # no beat: it runs out, and the job goes back
    [again] = other.claim_runnable(1)
    assert again.id == job
    other.save_resume(job, THEIRS)
    other.record_probe(job, "/tmp/theirs.bin", 200, {"ranges": True})
    # The stale runner wakes and writes as if it still held the job: none of it lands.
    stale.save_resume(job, RECORD)
    stale.record_probe(job, "/tmp/stale.bin", 1, {})
    stale.log_event(job, "info", "stale")
    stale.finish(job, Finished("/tmp/stale.bin", 1, "verified", "0", []))
    stale.fail(job, "stale", mismatch=True, kept=False)
    assert not stale.unclaim(job)
    stale.delete(job)
    assert not stale.holds(job) and other.holds(job)
    with open_queue(postgres_url) as q:
        row = q.get(job)
        assert (row.state, row.path, row.size, row.bytes_done, row.error) == (
            "active",
            "/tmp/theirs.bin",
            200,
            200,
            None,
        )
        assert q.load_resume(job) == THEIRS
        assert [e.message for e in q.events(job)] == [
            f"taken over: its runner ({socket.gethostname()} pid {os.getpid()}) stopped renewing"
        ]
    assert stale.heartbeat() == {job}  # told once
    assert stale.heartbeat() == set()
    assert other.heartbeat() == set()
    other.finish(job, Finished("/tmp/theirs.bin", 200, "verified", "1", []))
    with open_queue(postgres_url) as q:
        assert q.get(job).state == "done"
    stale.close()
    other.close()


def test_a_beat_keeps_the_lease(postgres_url):
    with open_queue(postgres_url) as q:
        [job] = q.add_many([spec(1)])
    with runner(postgres_url, lease_timeout=30) as r, open_queue(postgres_url) as q:
        r.claim_runnable(1)
        assert r.heartbeat(1000, 1) == set()
        assert q.requeue_active() == [] and q.get(job).state == "active"


def _hears(notices) -> bool:
    """Whether the listener hears something (waiting until its connection has something to read)."""
    ready, _, _ = select.select([notices], [], [], 10)
    return bool(ready) and notices.heard()


def test_a_listener_hears_jobs_added_and_steered_elsewhere(postgres_url):
    with open_queue(postgres_url) as q, runner(postgres_url) as r:
        notices = r.listen()
        assert notices is not None
        try:
            assert not notices.heard()  # nothing yet
            [job] = q.add_many([spec(1)])
            assert _hears(notices)
            assert not notices.heard()  # taken: heard once
            for steer in (
                lambda: q.apply(TRANSITIONS["pause"], [job]),
                lambda: q.set_priority(job, 5),
                lambda: q.set_concurrency(job, 3),
                lambda: q.apply(TRANSITIONS["resume"], [job]),
                lambda: q.remove([job], delete_file=False),
            ):
                steer()
                assert _hears(notices)
        finally:
            notices.close()


@pytest.mark.slow
def test_a_job_taken_back_into_the_queue_is_heard(postgres_url):
    with open_queue(postgres_url) as q:
        [job] = q.add_many([spec(1)])
    with runner(postgres_url, lease_timeout=0.2) as stale, runner(postgres_url) as idle:
        [claimed] = stale.claim_runnable(1)
        assert claimed.id == job
        notices = idle.listen()
        assert notices is not None
        try:
            wait_for(lambda: idle.requeue_active() == [job])
            assert _hears(notices)  # every idle runner looks now, not at its next poll
        finally:
            notices.close()


def test_an_unreachable_database_is_one_line_without_the_password(postgres_server: PostgresServer):
    with socket.socket() as s:  # a port nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    url = f"postgresql://getm:{PASSWORD}@127.0.0.1:{closed}/nothing"
    with pytest.raises(QueueUnreachable) as caught:
        open_queue(url)
    text = str(caught.value)
    assert text.startswith("cannot reach the queue database postgresql://getm:***@127.0.0.1")
    assert PASSWORD not in text and "\n" not in text


def test_a_wrong_password_is_not_repeated(postgres_server: PostgresServer):
    url = postgres_server.url("postgres").replace(PASSWORD, "not-the-pw-42")
    with pytest.raises(QueueError) as caught:
        open_queue(url)
    assert "not-the-pw-42" not in str(caught.value) and "authentication failed" in str(caught.value)


@pytest.mark.parametrize(
    ("location", "database", "secret", "shown"),
    [
        ("postgresql://u:p%40ss@h:5/db", True, "p@ss", "postgresql://u:***@h:5/db"),
        (
            "postgres://h/db?password=xyz&sslmode=require",
            True,
            "xyz",
            "postgres://h/db?password=***&sslmode=require",
        ),
        ("host=h password='a b' dbname=x", True, "a b", "host=h password=*** dbname=x"),
        ("host=h dbname=x sslmode=verify-full", True, None, "host=h dbname=x sslmode=verify-full"),
        ("/var/lib/getm", False, None, "/var/lib/getm"),
        ("~/data", False, None, "~/data"),
    ],
)
def test_locations_and_their_passwords(location, database, secret, shown):
    assert is_database(location) is database
    assert password_of(location) == secret
    assert redact(location, location) == shown
