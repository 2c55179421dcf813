"""The queue contract: what every backend of getm_tui.queue.interface.JobQueue must do, written against
the interface alone (no SQL, no private members) and run on every backend in conftest.BACKENDS."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from getm_tui.queue.errors import QueueError, UnknownJob
from getm_tui.queue.interface import JobQueue
from getm_tui.queue.records import Event, Extent, Finished, Job, JobSpec
from getm_tui.queue.removal import PART_SUFFIX
from getm_tui.queue.states import (
    COMMAND_EVENT,
    MAX_CONCURRENCY,
    NEW_URL,
    PAUSE,
    RESUME,
    RETRY,
    STATES,
    TRANSITIONS,
    JobState,
    Outcome,
    Transition,
)
from getm_tui.queue.views import SORTS, View
from tests.helpers.runner_util import wait_for

RECORD = {"url": "x", "parts": [[0, 100, 60], [100, 100, 40]]}


def spec(n: int | str, **more: object) -> JobSpec:
    return {"url": f"https://example.org/data/{n}.bin", "directory": "/tmp", **more}  # type: ignore[typeddict-item]


def put_in(q: JobQueue, state: JobState, **more: object) -> int:
    """A new job in `state`, reached the way the runner and the commands reach it."""
    [job_id] = q.add_many([spec(f"{state}-{next(_serial)}", **more)])
    if state is JobState.PAUSED:
        q.apply(PAUSE, [job_id])
    elif state is not JobState.QUEUED:
        assert q.claim(job_id)
    if state is JobState.DONE:
        q.finish(job_id, Finished("/tmp/done.bin", 10, "verified", "0000abcd", [{"algorithm": "md5"}]))
    elif state is JobState.FAILED:
        q.fail(job_id, "boom", mismatch=True, kept=False)
    elif state is JobState.CANCELED:
        [removal] = q.remove([job_id], delete_file=False, running={job_id})
        assert removal.handed_over
    assert q.get(job_id).state == state
    return job_id


_serial = itertools.count()


def comparable(job: Job) -> dict[str, object]:
    """A job's row without the time it was last written."""
    row = vars(job).copy()
    row.pop("updated")
    return row


# -- adding and reading ---------------------------------------------------------------------------


def test_add_many_gives_ids_in_order_and_defaults(q):
    ids = q.add_many([spec(1), spec(2, name="two", priority=3, concurrency=2, checksums=["md5:00"])])
    assert ids == sorted(ids) and len(set(ids)) == 2
    one, two = q.check_ids(ids)
    assert (one.url, one.directory, one.name, one.state) == (
        "https://example.org/data/1.bin",
        "/tmp",
        None,
        "queued",
    )
    assert (one.priority, one.concurrency, one.checksums, one.info, one.verdict) == (0, None, [], {}, None)
    assert (one.attempts, one.error, one.bytes_done, one.size, one.path) == (0, None, 0, None, None)
    assert one.created > 0 and one.started is None and one.finished is None
    assert (two.name, two.priority, two.concurrency, two.checksums) == ("two", 3, 2, ["md5:00"])
    assert q.add_many([spec(3, info={"insecure": True})])
    assert q.jobs()[-1].info == {"insecure": True}


def test_add_many_is_all_or_nothing(q):
    with pytest.raises(QueueError):
        q.add_many([spec(1), {"url": None, "directory": "/tmp"}])
    assert q.jobs() == []


@pytest.mark.slow
def test_add_many_reads_a_stream_and_a_failure_midway_adds_nothing(q):
    def stream(n: int, fail_at: int | None = None):
        for i in range(n):
            if i == fail_at:
                raise ValueError("a bad line")
            yield spec(f"s{i}")

    with pytest.raises(ValueError):
        q.add_many(stream(25_000, fail_at=24_000))  # past the first blocks a backend may write
    assert q.count(View()) == 0 and q.jobs() == []
    ids = q.add_many(stream(25_000))
    assert ids == sorted(ids) and len(set(ids)) == 25_000
    assert q.counts()["queued"] == 25_000


def test_get_and_check_ids_name_what_is_missing(q):
    [a] = q.add_many([spec(1)])
    assert q.get(a).id == a
    with pytest.raises(UnknownJob, match=f"{a + 1}"):
        q.get(a + 1)
    with pytest.raises(UnknownJob, match=f"{a + 1}, {a + 2}"):
        q.check_ids([a, a + 1, a + 2])
    assert [j.id for j in q.check_ids([a, a])] == [a, a]


def test_jobs_and_iter_jobs_by_id_and_state(q):
    queued = q.add_many([spec(i) for i in range(3)])
    paused = put_in(q, JobState.PAUSED)
    assert [j.id for j in q.jobs()] == [*queued, paused]
    assert [j.id for j in q.iter_jobs()] == [*queued, paused]
    assert [j.id for j in q.jobs(["paused"])] == [paused]
    assert [j.id for j in q.iter_jobs(["queued", "paused"])] == [*queued, paused]
    assert q.jobs(["done"]) == []


def test_listing_is_what_a_table_shows_of_iter_jobs(q):
    queued = q.add_many([spec(i) for i in range(3)] + [spec("named", name="Ünï.bin", priority=-3)])
    failed = put_in(q, JobState.FAILED)
    done = put_in(q, JobState.DONE)

    def shown(job: Job) -> tuple:
        state = str.__str__(job.state)
        return (job.id, job.url, job.name, job.path, state, job.priority, job.size, job.bytes_done,
                job.verdict, job.error)  # fmt: skip

    listed = list(q.listing())
    assert [row[0] for row in listed] == [*queued, failed, done]
    assert listed == [shown(j) for j in q.iter_jobs()]
    assert listed[-1][4] == "done" and type(listed[-1][4]) is str and listed[-1][3]  # the stored text; a path
    assert listed[-2][9]  # the failure's error
    assert list(q.listing(["failed", "done"])) == [shown(j) for j in q.iter_jobs(["failed", "done"])]
    assert list(q.listing(["paused"])) == []


def test_ids_counts_and_extent(q):
    assert q.extent() == Extent(None, None, None)
    assert q.counts() == dict.fromkeys(STATES, 0)
    ids = [put_in(q, s) for s in JobState]
    q.set_priority(ids[0], -4)
    q.set_priority(ids[1], 9)
    assert q.ids() == set(ids)
    assert q.counts() == dict.fromkeys(STATES, 1)
    assert q.extent() == Extent(max(ids), -4, 9)


def test_changed_since_and_fingerprint_follow_rows_not_progress(q):
    a, b = q.add_many([spec(1), spec(2)])
    mark = q.fingerprint()
    since = max(j.updated for j in q.jobs())
    q.save_resume(a, RECORD)  # progress: neither sees it
    assert q.fingerprint() == mark
    q.apply(PAUSE, [b])
    assert q.fingerprint() != mark
    assert [j.id for j in q.changed_since(since + 1e-6)] == [b]
    assert {j.id for j in q.changed_since(0)} == {a, b}


# -- windows of a queue too long to load ----------------------------------------------------------


def _a_mixed_queue(q: JobQueue) -> dict[str, int]:
    """Jobs whose every sort order differs from the order they were added in; name -> id."""
    ids = {}
    for name, state, priority, size, done in [
        ("done.bin", JobState.DONE, 0, 10, 10),  # the size and file put_in finishes it with
        ("Alpha.bin", JobState.QUEUED, 2, None, 0),
        ("charlie.iso", JobState.ACTIVE, 0, 1000, 250),
        ("bravo.bin", JobState.PAUSED, -1, 20, 10),
        ("echo.tar", JobState.FAILED, 5, None, 0),
        ("foxtrot.bin", JobState.QUEUED, 0, None, 0),
    ]:
        job_id = put_in(q, state, name=name, priority=priority)
        if size is not None and state is not JobState.DONE:
            q.record_probe(job_id, f"/tmp/{name}", size, {})
            q.save_resume(job_id, {"parts": [[0, size, done]]})
        ids[name] = job_id
    return ids


# Ties (no size, no progress, the same priority) go by id, oldest first.
ORDERS = {
    "added": ["done.bin", "Alpha.bin", "charlie.iso", "bravo.bin", "echo.tar", "foxtrot.bin"],
    "name": ["Alpha.bin", "bravo.bin", "charlie.iso", "done.bin", "echo.tar", "foxtrot.bin"],
    "state": ["charlie.iso", "Alpha.bin", "foxtrot.bin", "bravo.bin", "echo.tar", "done.bin"],
    "size": ["charlie.iso", "bravo.bin", "done.bin", "Alpha.bin", "echo.tar", "foxtrot.bin"],
    "progress": ["done.bin", "bravo.bin", "charlie.iso", "Alpha.bin", "echo.tar", "foxtrot.bin"],
    "priority": ["echo.tar", "Alpha.bin", "done.bin", "charlie.iso", "foxtrot.bin", "bravo.bin"],
}


@pytest.mark.parametrize("sort", SORTS)
def test_windows_sort_the_whole_queue_and_page_by_key(q, sort: str):
    ids = _a_mixed_queue(q)
    names = {v: k for k, v in ids.items()}
    order = [names[j.id] for j in q.window(View(sort), 100)]
    assert order == ORDERS[sort]
    assert [names[j.id] for j in q.window(View(sort), 2, offset=3)] == order[3:5]
    for n in range(len(order)):  # the page after each row, by its key
        after = ids[order[n]]
        assert [names[j.id] for j in q.window(View(sort), 3, after=after)] == order[n + 1 : n + 4]
        assert [names[j.id] for j in q.window(View(sort), 2, offset=1, after=after)] == order[n + 2 : n + 4]
    assert q.window(View(sort), 0) == []


def test_a_window_filters_by_name_over_the_whole_queue(q):
    ids = _a_mixed_queue(q)
    assert [j.id for j in q.window(View("name", ".BIN"), 10)] == [
        ids[n] for n in ("Alpha.bin", "bravo.bin", "done.bin", "foxtrot.bin")
    ]
    assert [j.id for j in q.window(View("added", "alpha"), 10)] == [ids["Alpha.bin"]]
    assert q.count(View("size", "bin")) == 4 and q.count(View()) == 6
    assert q.count(View("added", "nothing like it")) == 0 and q.window(View("added", "zz"), 5) == []
    # A job is found by the name it is shown by: a probed file's, not its URL's.
    assert [j.id for j in q.window(View("added", "charlie.iso"), 5)] == [ids["charlie.iso"]]
    [renamed] = q.add_many([spec("from-the-url")])
    assert [j.id for j in q.window(View(text="from-the-url"), 5)] == [renamed]
    q.record_probe(renamed, "/tmp/served-name.bin", 1, {})
    assert q.window(View(text="from-the-url"), 5) == []
    assert [j.id for j in q.window(View(text="served-name"), 5)] == [renamed]
    q.remove([renamed], delete_file=False)
    assert q.count(View(text="served")) == 0


def test_a_window_after_a_job_that_is_gone(q):
    [job_id] = q.add_many([spec(1)])
    q.remove([job_id], delete_file=False)
    with pytest.raises(UnknownJob):
        q.window(View(), 5, after=job_id)
    with pytest.raises(QueueError):
        q.window(View("no such order"), 5)


def test_events_are_kept_oldest_first_and_go_with_the_job(q):
    a, b = q.add_many([spec(1), spec(2)])
    q.log_event(a, "info", "first")
    q.log_event(a, "warning", "second")
    q.log_event(b, "info", "other")
    events = q.events(a)
    assert [(e.kind, e.message) for e in events] == [("info", "first"), ("warning", "second")]
    assert all(isinstance(e, Event) and e.at > 0 for e in events)
    assert events[0].at <= events[1].at
    q.delete(a)
    assert q.events(a) == []
    assert a not in q.ids() and [e.message for e in q.events(b)] == ["other"]


def test_data_version_changes_when_another_connection_commits(q, connect):
    before = q.data_version()
    with connect() as other:
        other.add_many([spec(1)])
    assert q.data_version() != before


def test_a_batch_is_all_or_nothing_and_nests(q, connect):
    [a] = q.add_many([spec(1)])
    with pytest.raises(RuntimeError), q.batch():
        q.set_priority(a, 5)
        with q.batch():  # part of the outer one
            q.add_many([spec(2)])
        raise RuntimeError
    assert q.get(a).priority == 0 and q.ids() == {a}
    with q.batch(immediate=True):
        q.set_priority(a, 6)
        q.add_many([spec(3)])
    with connect() as other:
        assert other.get(a).priority == 6 and len(other.ids()) == 2


def test_resume_records_round_trip_and_count_bytes(q):
    [a] = q.add_many([spec(1)])
    assert q.load_resume(a) is None
    q.save_resume(a, RECORD)
    assert q.load_resume(a) == RECORD
    assert q.get(a).bytes_done == 100


# -- what users do: every transition from every state ---------------------------------------------


@pytest.mark.parametrize("state", list(JobState))
@pytest.mark.parametrize("transition", list(TRANSITIONS.values()), ids=list(TRANSITIONS))
def test_each_transition_from_each_state(q, transition: Transition, state: JobState):
    job_id = put_in(q, state)
    before = q.get(job_id)
    events = q.events(job_id)
    [outcome] = q.apply(transition, [job_id])
    after = q.get(job_id)
    moves = state in transition.sources
    assert outcome == Outcome(job_id, state, moves, None if moves else transition.refusal(job_id, state))
    if moves:
        assert after.state == transition.target
        expected = {**comparable(before), "state": transition.target, **transition.resets}
        assert comparable(after) == expected
        [event] = q.events(job_id)[len(events) :]
        assert (event.kind, event.message) == (
            COMMAND_EVENT,
            f"{transition.action}: {state} -> {transition.target}",
        )
    else:
        assert comparable(after) == comparable(before)
        assert q.events(job_id) == events


def test_the_transitions_and_their_messages():
    assert PAUSE.sources == {"queued", "active"} and PAUSE.target == "paused" and not PAUSE.resets
    assert RESUME.sources == {"paused"} and RESUME.target == "queued" and not RESUME.resets
    assert RETRY.sources == {"failed", "canceled"} and RETRY.target == "queued"
    assert dict(RETRY.resets) == {"error": None, "verdict": None}
    assert PAUSE.refusal(3, "paused") == "job 3 is already paused"
    assert PAUSE.refusal(3, "done") == "job 3 is done; not paused"
    assert RETRY.refusal(4, "queued") == "job 4 is already queued"
    assert RESUME.refusal(5, "failed") == "job 5 is failed; not resumed"


def test_retry_clears_error_and_verdict_and_keeps_attempts(q):
    job_id = put_in(q, JobState.FAILED)
    failed = q.get(job_id)
    assert (failed.error, failed.verdict, failed.attempts) == ("boom", "mismatch", 1)
    q.apply(RETRY, [job_id])
    assert (q.get(job_id).error, q.get(job_id).verdict, q.get(job_id).attempts) == (None, None, 1)


NEW_SIGNED = "https://bucket.example.org/data/x.bin?X-Amz-Date=20260101T000000Z&X-Amz-Expires=60&X-Amz-Signature=SECRET"


@pytest.mark.parametrize("state", list(JobState))
def test_set_url_from_each_state(q, state: JobState):
    job_id = put_in(q, state)
    q.save_resume(job_id, RECORD)
    before = q.get(job_id)
    events = q.events(job_id)
    outcome = q.set_url(job_id, NEW_SIGNED)
    after = q.get(job_id)
    moves = state in NEW_URL.sources
    assert outcome == Outcome(job_id, state, moves, None if moves else NEW_URL.refusal(job_id, state))
    if moves:
        # Queued again with the checks started over, the parts (resume record) and attempts kept.
        expected = {**comparable(before), "state": "queued", "url": NEW_SIGNED, **NEW_URL.resets}
        assert comparable(after) == expected
        assert q.load_resume(job_id) == RECORD
        [event] = q.events(job_id)[len(events) :]
        assert event.kind == COMMAND_EVENT
        assert event.message == f"new url: {state} -> queued: https://bucket.example.org/data/x.bin?***"
        assert "SECRET" not in event.message
    else:
        assert comparable(after) == comparable(before)
        assert q.events(job_id) == events


def test_set_url_refusals_and_unknown_jobs(q):
    assert NEW_URL.sources == {"queued", "paused", "failed", "canceled"} and NEW_URL.target == "queued"
    assert NEW_URL.refusal(3, "active") == "job 3 is active; not given a new URL"
    assert NEW_URL.refusal(3, "done") == "job 3 is done; not given a new URL"
    [a] = q.add_many([spec(1)])
    with pytest.raises(UnknownJob, match=f"{a + 1}"):
        q.set_url(a + 1, NEW_SIGNED)


def test_apply_with_an_unknown_id_changes_nothing(q):
    a, b = q.add_many([spec(1), spec(2)])
    with pytest.raises(UnknownJob, match=f"{b + 1}"):
        q.apply(PAUSE, [a, b + 1, b])
    assert [j.state for j in q.jobs()] == ["queued", "queued"]
    assert q.events(a) == [] and q.events(b) == []


def test_apply_moves_a_job_named_twice_once(q):
    [a] = q.add_many([spec(1)])
    assert [o.moved for o in q.apply(PAUSE, [a, a])] == [True]
    assert len(q.events(a)) == 1


@pytest.mark.parametrize("delete_file", [False, True])
@pytest.mark.parametrize("state", list(JobState))
def test_remove_from_each_state(q, state: JobState, delete_file: bool):
    job_id = put_in(q, state, name="file.bin")
    job = q.get(job_id)
    target = job.path or f"{job.directory}/file.bin"
    [removal] = q.remove([job_id], delete_file)  # no supervisor runs this queue
    assert (removal.job_id, removal.handed_over) == (job_id, False)
    wanted = [target + PART_SUFFIX] + ([target] if delete_file and state is JobState.DONE else [])
    assert list(removal.files) == wanted
    assert job_id not in q.ids() and q.events(job_id) == []


@pytest.mark.parametrize("state", [JobState.ACTIVE, JobState.CANCELED, JobState.PAUSED, JobState.QUEUED])
def test_remove_of_a_job_the_supervisor_runs_hands_it_over(q, state: JobState):
    job_id = put_in(q, state, info={"insecure": True})
    [removal] = q.remove([job_id], True, running={job_id})
    assert (removal.handed_over, removal.files) == (True, ())
    job = q.get(job_id)
    assert job.state == "canceled"
    assert job.info == {"insecure": True, "delete_file": True}  # merged: a retry keeps what add said


def test_remove_files_follow_the_probe_or_the_name(q):
    unnamed = put_in(q, JobState.QUEUED)
    probed = put_in(q, JobState.ACTIVE, name="given.bin")
    q.record_probe(probed, "/tmp/found.bin", 5, {"ranges": True})
    removals = {r.job_id: r.files for r in q.remove([unnamed, probed], False)}
    assert removals == {unnamed: (), probed: ("/tmp/found.bin" + PART_SUFFIX,)}


def test_remove_with_an_unknown_id_removes_nothing(q):
    [a] = q.add_many([spec(1)])
    with pytest.raises(UnknownJob):
        q.remove([a, a + 1], False)
    assert q.ids() == {a}


@pytest.mark.parametrize("state", list(JobState))
def test_priority_and_concurrency_apply_in_every_state_without_events(q, state: JobState):
    job_id = put_in(q, state)
    events = q.events(job_id)
    q.set_priority(job_id, 7)
    assert q.set_concurrency(job_id, 3) == 3
    job = q.get(job_id)
    assert (job.state, job.priority, job.concurrency) == (state, 7, 3)
    assert q.set_concurrency(job_id, 0) == 1
    assert q.set_concurrency(job_id, 1000) == MAX_CONCURRENCY
    assert q.get(job_id).concurrency == MAX_CONCURRENCY
    assert q.events(job_id) == events


# -- what the supervisor does ---------------------------------------------------------------------


def test_next_runnable_by_priority_then_age(q):
    low, high, mid, high2 = q.add_many(
        [spec(1), spec(2, priority=5), spec(3, priority=1), spec(4, priority=5)]
    )
    put_in(q, JobState.PAUSED, priority=9)
    put_in(q, JobState.FAILED, priority=9)
    assert [j.id for j in q.next_runnable(10)] == [high, high2, mid, low]
    assert [j.id for j in q.next_runnable(2)] == [high, high2]
    assert [j.id for j in q.next_runnable(2, exclude=[high])] == [high2, mid]
    q.set_priority(low, 6)
    assert q.next_runnable(1)[0].id == low


def test_claim_and_unclaim(q, connect):
    [a] = q.add_many([spec(1)])
    assert q.claim(a)
    job = q.get(a)
    assert job.state == "active" and job.started is not None and job.error is None
    with connect() as other:
        assert not other.claim(a)  # claimed once
    assert q.next_runnable(5) == []
    assert q.unclaim(a) and q.get(a).state == "queued"
    assert not q.unclaim(a)
    for state in (JobState.PAUSED, JobState.DONE, JobState.FAILED, JobState.CANCELED):
        other_id = put_in(q, state)
        assert not q.claim(other_id) and not q.unclaim(other_id)
        assert q.get(other_id).state == state


def test_claim_runnable_by_priority_then_age_once(q, connect):
    low, high, mid = q.add_many([spec(1), spec(2, priority=5), spec(3, priority=1)])
    put_in(q, JobState.PAUSED, priority=9)
    claimed = q.claim_runnable(2, exclude=[high])
    assert [j.id for j in claimed] == [mid, low]
    assert [j.state for j in claimed] == ["active", "active"]  # as they are now, not as they were
    assert [q.get(i).state for i in (mid, low, high)] == ["active", "active", "queued"]
    with connect() as other:
        assert [j.id for j in other.claim_runnable(5)] == [high]
    assert q.claim_runnable(5) == [] and q.claim_runnable(0) == []
    assert q.get(high).started is not None


def test_requeue_active_puts_back_what_a_stopped_supervisor_ran(q):
    active = [put_in(q, JobState.ACTIVE) for _ in range(2)]
    paused = put_in(q, JobState.PAUSED)
    assert sorted(q.requeue_active()) == active
    assert [q.get(i).state for i in active] == ["queued", "queued"]
    assert q.get(paused).state == "paused"
    assert q.requeue_active() == []


def test_running_rows(q):
    a = put_in(q, JobState.ACTIVE, concurrency=3)
    b = put_in(q, JobState.ACTIVE)
    q.apply(PAUSE, [b])
    rows = q.running_rows([a, b, b + 100])
    assert set(rows) == {a, b}
    assert (rows[a].state, rows[a].concurrency) == ("active", 3)
    assert (rows[b].state, rows[b].concurrency) == ("paused", None)
    assert q.running_rows([]) == {}


def test_record_probe(q):
    a = put_in(q, JobState.ACTIVE, info={"insecure": True})
    q.record_probe(a, "/tmp/x.bin", 1234, {"insecure": True, "ranges": True})
    job = q.get(a)
    assert (job.path, job.size, job.info) == ("/tmp/x.bin", 1234, {"insecure": True, "ranges": True})
    assert job.display_name == "x.bin"


def test_finish_records_the_file_and_drops_the_resume_record(q):
    a = put_in(q, JobState.ACTIVE)
    q.save_resume(a, RECORD)
    integrity = [{"algorithm": "md5", "ok": True}]
    q.finish(a, Finished("/tmp/a.bin", 500, "verified", "1234abcd", integrity))
    job = q.get(a)
    assert (job.state, job.path, job.size, job.bytes_done) == ("done", "/tmp/a.bin", 500, 500)
    assert (job.verdict, job.integrity, job.error) == ("verified", integrity, None)
    assert job.finished is not None and q.load_resume(a) is None
    [event] = q.events(a)
    assert (event.kind, event.message) == ("done", "saved /tmp/a.bin (verified, crc32c 1234abcd)")


@pytest.mark.parametrize("mismatch", [False, True])
@pytest.mark.parametrize("kept", [False, True])
def test_fail_counts_the_attempt_and_keeps_what_is_kept(q, mismatch: bool, kept: bool):
    a = put_in(q, JobState.ACTIVE)
    q.save_resume(a, RECORD)
    q.fail(a, "the server said no", mismatch=mismatch, kept=kept)
    job = q.get(a)
    assert (job.state, job.error, job.attempts) == ("failed", "the server said no", 1)
    assert job.verdict == ("mismatch" if mismatch else None)
    assert job.bytes_done == (100 if kept else 0)
    assert job.finished is not None
    [event] = q.events(a)
    assert (event.kind, event.message) == ("error", "the server said no")
    q.apply(RETRY, [a])
    assert q.claim(a)
    q.fail(a, "again", mismatch=False, kept=True)
    assert q.get(a).attempts == 2


def test_a_closed_queue_and_a_reopened_one_hold_the_same_jobs(connect: Callable[[], JobQueue]):
    with connect() as first:
        ids = first.add_many([spec(1), spec(2)])
    with connect() as second:
        assert [j.id for j in second.jobs()] == ids


def test_a_periodic_task_is_one_runners_turn_until_it_ends(connect: Callable[[], JobQueue], tmp_path):
    """take_turn: a queue runners share gives a task (a saved mirror's listing) to one caller per period
    and tells the others how long to leave it; a queue one supervisor runs gives every turn to its caller."""
    with connect() as first, connect() as second:
        shared = first.join_fleet(str(tmp_path / "a"), 30)
        assert first.take_turn("mirror:bank", 60) == 0.0
        wait = second.take_turn("mirror:bank", 60)
        assert 0.0 < wait <= 60 if shared else wait == 0.0
        assert second.take_turn("mirror:other", 60) == 0.0  # another task's turn is its own
        assert first.take_turn("mirror:short", 0.2) == 0.0
        wait_for(lambda: second.take_turn("mirror:short", 60) == 0.0)  # a turn that ended is free again
        first.leave_fleet()
