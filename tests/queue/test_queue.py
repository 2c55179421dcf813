"""The SQLite queue used directly: transactions, the state machine, ordering, permissions, corruption,
concurrent writers; and the supervisor lock it sits beside."""

from __future__ import annotations

import fcntl
import itertools
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import pytest

from getm_tui.engine.urls import name_from_url
from getm_tui.queue import lock
from getm_tui.queue.records import _url_name
from getm_tui.queue.sqlite import (
    DB_NAME,
    STATES,
    Queue,
    QueueCorrupt,
    QueueError,
    UnknownJob,
)


def spec(n: int | str, **more: object) -> dict[str, object]:
    return {"url": f"https://example.org/data/{n}.bin", "directory": "/tmp", **more}


@pytest.fixture
def q(tmp_path):
    with Queue(str(tmp_path / "data")) as queue:
        yield queue


def test_add_many_inserts_all_in_order(q):
    ids = q.add_many([spec(1), spec(2, priority=3, concurrency=2, checksums=["md5:" + "0" * 32])])
    assert len(ids) == 2 and ids[0] < ids[1]
    first, second = q.jobs()
    assert (first.id, first.state, first.priority, first.checksums) == (ids[0], "queued", 0, [])
    assert (second.priority, second.concurrency, second.checksums) == (3, 2, ["md5:" + "0" * 32])


def test_add_many_is_all_or_nothing(q):
    q.add_many([spec("kept")])
    with pytest.raises(QueueError):  # the database refuses the third row (url NOT NULL)
        q.add_many([spec(1), spec(2), {"url": None, "directory": "/tmp"}])
    with pytest.raises(KeyError):  # a bad spec found halfway through
        q.add_many([spec(3), {"url": "https://example.org/x"}])
    assert [j.url for j in q.jobs()] == ["https://example.org/data/kept.bin"]
    assert not q.db.in_transaction  # nothing left open: the queue is still usable
    assert len(q.add_many([spec(4)])) == 1


def _indexes(q: Queue) -> set[tuple[str, str]]:
    return set(q.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))


def test_an_add_that_outgrows_the_queue_builds_its_indexes_again_before_it_commits(q, monkeypatch):
    """sqlite_add.DeferredIndexes: past the threshold the indexes go, and come back within the add's
    transaction; the rows are found through them as through indexes kept up row by row."""
    from getm_tui.queue import sqlite, sqlite_add
    from getm_tui.queue.views import View

    before = _indexes(q)
    q.add_many([spec("first")])
    monkeypatch.setattr(sqlite, "ADD_BLOCK", 3)
    monkeypatch.setattr(sqlite_add, "DEFER_INDEXES_AFTER", 4)
    dropped: list[int] = []
    rebuild = sqlite_add.DeferredIndexes.rebuild

    def watched(self):  # type: ignore[no-untyped-def]
        dropped.append(len(self._dropped))
        rebuild(self)

    monkeypatch.setattr(sqlite_add.DeferredIndexes, "rebuild", watched)
    ids = q.add_many([spec(f"n{9 - i}", priority=i % 3) for i in range(10)])
    assert dropped == [len(before) - 1]  # all but the events table's
    assert _indexes(q) == before
    assert [r[0] for r in q.db.execute("PRAGMA integrity_check")] == ["ok"]
    assert [j.display_name for j in q.window(View("name"), 3)] == ["first.bin", "n0.bin", "n1.bin"]
    assert [j.id for j in q.window(View("priority"), 4)] == [ids[2], ids[5], ids[8], ids[1]]
    assert [j.id for j in q.next_runnable(2)] == [ids[2], ids[5]]
    assert (q.count(View("name", "n5")), q.count(View("name", "bin"))) == (1, 11)


def test_a_failed_big_add_leaves_the_queue_and_its_indexes_as_they_were(q, monkeypatch):
    from getm_tui.queue import sqlite, sqlite_add

    before = _indexes(q)
    monkeypatch.setattr(sqlite, "ADD_BLOCK", 2)
    monkeypatch.setattr(sqlite_add, "DEFER_INDEXES_AFTER", 2)
    with pytest.raises(QueueError):
        q.add_many([*(spec(i) for i in range(6)), {"url": None, "directory": "/tmp"}])
    assert _indexes(q) == before
    assert q.counts()["queued"] == 0


def test_rows_inserted_many_a_statement_keep_their_order_ids_and_names(q, monkeypatch):
    """sqlite_add.BulkInsert: whole statements of ROWS_PER_INSERT rows and a rest row by row, in each
    block; each job gets its own values and name, and the ids follow the specs."""
    from getm_tui.queue import sqlite, sqlite_add
    from getm_tui.queue.views import View

    monkeypatch.setattr(sqlite, "ADD_BLOCK", 25)
    monkeypatch.setattr(sqlite_add, "ROWS_PER_INSERT", 10)
    specs = [
        spec(f"f{i:03d}", priority=i % 4, concurrency=i % 3 or None, checksums=["md5:" + "0" * 32] * (i % 2))
        for i in range(57)
    ]
    ids = q.add_many(specs)
    assert ids == list(range(ids[0], ids[0] + 57))
    for job, s in zip(q.check_ids(ids), specs, strict=True):
        assert (job.url, job.priority, job.concurrency, job.checksums) == (
            s["url"], s["priority"], s["concurrency"], s["checksums"]
        )  # fmt: skip
    assert [j.id for j in q.window(View("name", "f05"), 20)] == ids[50:57]
    alike = q.add_many([spec(f"u{i:02d}", priority=2) for i in range(35)])  # rests bound once a statement
    assert [(j.url, j.priority) for j in q.check_ids(alike)] == [
        (spec(f"u{i:02d}")["url"], 2) for i in range(35)
    ]
    assert [j.id for j in q.window(View("name", "u"), 40)] == alike
    refused = {"url": None, "directory": "/tmp"}
    for bad in ([*specs[:33], refused], [*specs[:5], refused, *specs[:10]]):  # in a rest; in a statement
        with pytest.raises(QueueError):
            q.add_many(bad)
    assert len(q.ids()) == 57 + 35


def test_batch_commits_its_statements_together_or_not_at_all(q):
    (job_id,) = q.add_many([spec(1)])
    with pytest.raises(RuntimeError), q.batch():
        q.update(job_id, state="done")
        q.log_event(job_id, "done", "saved")
        raise RuntimeError("stopped halfway")
    assert (q.get(job_id).state, q.events(job_id)) == ("queued", [])
    assert not q.db.in_transaction
    with q.batch():
        q.update(job_id, state="done")
        q.log_event(job_id, "done", "saved")
    assert q.get(job_id).state == "done" and [e[1:] for e in q.events(job_id)] == [("done", "saved")]


def test_a_batch_locks_at_its_first_write_and_a_batch_inside_it_commits_with_it(q):
    (job_id,) = q.add_many([spec(1)])
    other = Queue(q.data_dir)
    other.db.execute("PRAGMA busy_timeout = 0")
    try:
        with q.batch():
            q.get(job_id)
            other.update(job_id, priority=5)  # the batch has only read: it holds no lock
            with q.batch():
                q.update(job_id, state="done")
            assert q.db.in_transaction  # the inner batch left the commit to the outer one
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.db.execute("UPDATE jobs SET priority = 6")
        assert not q.db.in_transaction
        assert (q.get(job_id).state, other.get(job_id).priority) == ("done", 5)
    finally:
        other.close()


def test_transition_only_from_the_given_states(q):
    (jid,) = q.add_many([spec(1)])
    assert q.transition(jid, "active", ["queued"], started=1.0)
    assert not q.transition(jid, "paused", ["paused"])
    assert q.get(jid).state == "active" and q.get(jid).started == 1.0
    assert q.transition(jid, "failed", ["active"], error="boom", info={"why": "test"})
    job = q.get(jid)
    assert (job.state, job.error, job.info) == ("failed", "boom", {"why": "test"})
    assert q.transition(jid, "queued", ["failed", "canceled"], error=None)
    assert q.get(jid).error is None
    assert not q.transition(10_000, "queued", ["failed"])


def test_unknown_ids(q):
    ids = q.add_many([spec(1), spec(2)])
    assert [j.id for j in q.check_ids(ids[::-1])] == ids[::-1]
    with pytest.raises(UnknownJob, match="77, 78"):
        q.check_ids([ids[0], 77, 78])
    with pytest.raises(UnknownJob):
        q.get(77)


def test_next_runnable_by_priority_then_age(q):
    low, high, low2, high2, paused = q.add_many(
        [spec(1), spec(2, priority=5), spec(3), spec(4, priority=5), spec(5, priority=9)]
    )
    q.transition(paused, "paused", ["queued"])
    assert [j.id for j in q.next_runnable(10)] == [high, high2, low, low2]
    assert [j.id for j in q.next_runnable(2, exclude=[high])] == [high2, low]


def test_data_version_changes_after_another_connections_commit(tmp_path):
    d = str(tmp_path / "data")
    with Queue(d) as watcher, Queue(d) as writer:
        before = watcher.data_version()
        assert watcher.data_version() == before
        writer.add_many([spec(1)])
        after = watcher.data_version()
        assert after != before
        watcher.add_many([spec(2)])  # its own commits do not count
        assert watcher.data_version() == after


def test_requeue_active(q):
    a, b, c = q.add_many([spec(1), spec(2), spec(3)])
    q.transition(a, "active", ["queued"])
    q.transition(b, "active", ["queued"])
    q.transition(b, "done", ["active"])
    assert q.requeue_active() == [a]
    assert [j.state for j in q.jobs()] == ["queued", "done", "queued"]
    assert q.requeue_active() == []


def test_counts_and_states(q):
    a, _b = q.add_many([spec(1), spec(2)])
    q.transition(a, "paused", ["queued"])
    assert q.counts() == {**dict.fromkeys(STATES, 0), "queued": 1, "paused": 1}
    assert [j.id for j in q.jobs(["paused"])] == [a]


def test_data_dir_is_private(tmp_path):
    old = os.umask(0o022)
    try:
        d = tmp_path / "deep" / "data"
        Queue(str(d)).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(d / DB_NAME).st_mode) == 0o600


def test_data_dir_that_cannot_be_made_is_a_queue_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(QueueError, match="cannot create the data directory"):
        Queue(str(tmp_path / "file" / "data"))


def test_resume_record_round_trip_counts_the_bytes_it_holds(q):
    (jid,) = q.add_many([spec(1)])
    assert q.load_resume(jid) is None
    record = {"version": 1, "size": 300, "parts": [[0, 99, 100, 1], [100, 199, 40, 2], [200, 299, 0, 0]]}
    q.save_resume(jid, record)
    assert q.load_resume(jid) == record
    assert q.get(jid).bytes_done == 140
    q.update(jid, resume=None)  # as the supervisor drops it when the job ends
    assert q.load_resume(jid) is None


def test_corrupted_queue_is_one_clear_error(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    garbage = b"this is not a database, it is garbage " * 200
    (d / DB_NAME).write_bytes(garbage)
    for check in (False, True):  # opened without recover, it is reported and left as it is
        with pytest.raises(QueueCorrupt) as err:
            Queue(str(d), check=check)
        message = str(err.value)
        assert "is damaged (file is not a database)" in message
        assert str(d / DB_NAME) in message and "\n" not in message
    assert (d / DB_NAME).read_bytes() == garbage


def test_url_name_matches_urlsplit():
    schemes = ["http://", "https://", "HTTPS://", "file://", "file:", "ftp://"]
    hosts = ["", "h", "u:p@h", "h:80", "[::1]:8"]
    paths = ["", "/", "/a", "/a/b%20c.bin", "/a/", "//x", "/a;p=1", "/%2F"]
    tails = ["", "?", "?q=1/2", "#f", "#f/g?x", "?a#b/c"]
    for url in map("".join, itertools.product(schemes, hosts, paths, tails)):
        assert _url_name(url) == name_from_url(url), url


def test_display_name_never_shows_secrets(q):
    (jid,) = q.add_many([{"url": "https://u:pw@h/dir/f.bin?X-Amz-Signature=secret", "directory": "/tmp"}])
    job = q.get(jid)
    assert job.display_name == "f.bin"
    assert "secret" not in str(job.public()) and "pw" not in str(job.public())
    assert job.public()["path"] is None  # not known until the supervisor names the file


ADD_ONE = """
import sys
from getm_tui.queue.sqlite import Queue
with Queue(sys.argv[1]) as q:
    print(q.add_many([{"url": "https://example.org/" + sys.argv[2], "directory": "/tmp"}])[0])
"""


@pytest.mark.slow
def test_forty_concurrent_writers_lose_nothing(tmp_path):
    d = str(tmp_path / "data")
    procs = [
        subprocess.Popen([sys.executable, "-c", ADD_ONE, d, str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(40)
    ]
    ids = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(ids)) == 40
    with Queue(d) as q:
        jobs = q.jobs()
    assert sorted(j.id for j in jobs) == sorted(ids)
    assert sorted(j.url for j in jobs) == sorted(f"https://example.org/{i}" for i in range(40))


# -- the supervisor lock ------------------------------------------------------------------------------


def test_running_supervisor_and_lock(tmp_path):
    d = str(tmp_path)
    assert lock.running_supervisor(d) is None
    held = lock.SupervisorLock(d)
    held.acquire()
    try:
        assert lock.running_supervisor(d) == os.getpid()
        with pytest.raises(lock.QueueBusy) as busy:
            lock.SupervisorLock(d).acquire()
        assert busy.value.pid == os.getpid()
    finally:
        held.release()
    assert lock.running_supervisor(d) is None


def test_a_probe_does_not_pass_for_a_supervisor(tmp_path):
    # `running_supervisor` holds a shared lock for an instant; a supervisor starting then must still start.
    d = str(tmp_path)
    open(lock.lock_path(d), "w").close()
    fd = os.open(lock.lock_path(d), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    threading.Timer(0.03, os.close, (fd,)).start()
    started = lock.SupervisorLock(d)
    t0 = time.monotonic()
    started.acquire()
    try:
        assert time.monotonic() - t0 < 1
        assert lock.running_supervisor(d) == os.getpid()
    finally:
        started.release()


# -- the file's versions ------------------------------------------------------------------------------


def test_a_queue_file_from_before_windows_is_brought_up_to_date(tmp_path):
    """A file written before the view indexes (user_version 0, no names) opens, and its jobs sort and
    filter by the names they are shown by."""
    from getm_tui.queue.migrations import VERSION
    from getm_tui.queue.schema import SCHEMA
    from getm_tui.queue.views import View

    data = tmp_path / "data"
    data.mkdir()
    old = sqlite3.connect(data / DB_NAME)
    old.executescript(SCHEMA)
    old.executemany(
        "INSERT INTO jobs (url, directory, name, path, created, updated) VALUES (?, '/tmp', ?, ?, 1, 1)",
        [
            ("https://example.org/b.bin", None, None),
            ("https://example.org/x", "A-name.bin", None),
            ("https://example.org/y", None, "/tmp/c-file.bin"),
        ],
    )
    old.commit()
    old.close()
    with Queue(str(data)) as q:
        assert q.db.execute("PRAGMA user_version").fetchone()[0] == VERSION
        assert [j.display_name for j in q.window(View("name"), 10)] == ["A-name.bin", "b.bin", "c-file.bin"]
        assert q.count(View(text="FILE")) == 1
    with Queue(str(data)) as q:  # opened again: nothing left to do
        assert q.count(View()) == 3


@pytest.mark.slow
def test_a_long_queue_streams_in_and_is_read_by_windows(q):
    """A million-job queue, smaller: added from a stream in one transaction, read a window at a time."""
    from getm_tui.queue.views import View

    n = 25_000
    ids = q.add_many({"url": f"https://example.org/q/{n - i:06d}.bin", "directory": "/tmp"} for i in range(n))
    assert ids == list(range(1, n + 1))
    assert q.count(View()) == n and q.counts()["queued"] == n
    by_name = q.window(View("name"), 3)
    assert [j.id for j in by_name] == [n, n - 1, n - 2]
    page, seen = q.window(View("name"), 1000), 0
    while page:  # keyset paging walks the whole order once
        seen += len(page)
        page = q.window(View("name"), 1000, after=page[-1].id)
    assert seen == n
    assert [j.id for j in q.window(View("added", "012345"), 5)] == [n - 12345 + 1]
