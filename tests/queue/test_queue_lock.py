"""A queue file another process keeps locked: real `getm-tui` processes against a lock this test holds.

A command waits up to queue_timeout (GETM_TUI_QUEUE_TIMEOUT or the config key), then gives up with one
line and exit 2; if the lock goes within that time, it just succeeds. In WAL mode a writer's lock does not
stop readers, so `ls` is blocked only by a lock on the whole file (locking_mode=EXCLUSIVE).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from getm_tui.queue.sqlite import DB_NAME, Queue
from tests.helpers.runner_util import cli, env_for, wait_for

pytestmark = pytest.mark.timeout(120)

URL = "https://example.org/a.bin"


@pytest.fixture
def data_dir(tmp_path) -> str:
    d = str(tmp_path / "q")
    with Queue(d) as q:
        q.add_many([{"url": "https://example.org/first.bin", "directory": str(tmp_path)}])
    return d


@contextmanager
def held(data_dir: str, whole_file: bool) -> Iterator[sqlite3.Connection]:
    """Hold the queue's write lock (BEGIN EXCLUSIVE), or with `whole_file` a lock readers wait on too."""
    db = sqlite3.connect(os.path.join(data_dir, DB_NAME), isolation_level=None)
    try:
        if whole_file:
            db.execute("PRAGMA locking_mode = EXCLUSIVE")
        db.execute("BEGIN EXCLUSIVE")
        if whole_file:
            db.execute("UPDATE jobs SET priority = priority")  # takes the exclusive lock on the file now
        yield db
    finally:
        db.close()


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def timed(data_dir: str, *args: str, wait: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    out = cli(data_dir, *args, env={"GETM_TUI_QUEUE_TIMEOUT": wait})
    return out, time.monotonic() - started


def urls(data_dir: str) -> list[str]:
    with Queue(data_dir) as q:
        return [j.url for j in q.jobs()]


@pytest.mark.slow
def test_add_gives_up_after_the_timeout_with_one_line(data_dir, tmp_path):
    path = os.path.join(data_dir, DB_NAME)
    with held(data_dir, whole_file=False):
        out, took = timed(data_dir, "add", URL, "-d", str(tmp_path), wait="1.5")
    assert out.returncode == 2 and out.stdout == ""
    assert one_line(out) == (
        f"getm-tui: the queue {path} is locked by another process (gave up waiting after 1.5 s)"
    )
    assert 1.5 <= took < 15  # it waited the whole timeout, and not much more (a loaded machine is slow)
    assert urls(data_dir) == ["https://example.org/first.bin"]  # nothing half added


def test_readers_are_not_blocked_by_a_writer(data_dir):
    with held(data_dir, whole_file=False):
        out, _ = timed(data_dir, "ls", "--json", wait="1")
    assert out.returncode == 0, out.stderr
    assert [j["url"] for j in json.loads(out.stdout)] == ["https://example.org/first.bin"]


@pytest.mark.slow
def test_ls_gives_up_on_a_file_locked_whole(data_dir):
    with held(data_dir, whole_file=True):
        out, took = timed(data_dir, "ls", wait="1")
    assert out.returncode == 2 and out.stdout == ""
    line = one_line(out)
    assert line.startswith("getm-tui: the queue ") and line.endswith(
        "is locked by another process (gave up waiting after 1 s)"
    )
    assert took >= 1


def waiting_on_the_lock(proc: subprocess.Popen[str]) -> bool:
    """The process has the queue open and sleeps in SQLite's busy handler: it is waiting, not starting."""
    try:
        names = [os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        with open(f"/proc/{proc.pid}/wchan") as f:
            wchan = f.read()
    except OSError:  # it exited, or a descriptor closed while we looked
        return proc.poll() is not None
    return any(n.endswith(DB_NAME) for n in names) and "sleep" in wchan


@pytest.mark.parametrize("verb", ["add", "ls"])
def test_a_lock_released_in_time_lets_the_command_through(data_dir, tmp_path, verb):
    args = ["add", URL, "-d", str(tmp_path)] if verb == "add" else ["ls", "--json"]
    with held(data_dir, whole_file=verb == "ls"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "getm_tui", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env_for(data_dir), "GETM_TUI_QUEUE_TIMEOUT": "60"},
        )
        try:
            wait_for(lambda: waiting_on_the_lock(proc), timeout=30, interval=0.02)
            assert proc.poll() is None, proc.communicate()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err == ""
    if verb == "add":
        assert out == "2\n"
        assert urls(data_dir) == ["https://example.org/first.bin", URL]
    else:
        assert [j["url"] for j in json.loads(out)] == ["https://example.org/first.bin"]


@pytest.mark.slow
def test_the_timeout_comes_from_the_config_file_too(data_dir, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("queue_timeout = 0.5\n")
    with held(data_dir, whole_file=False):
        out = cli(data_dir, "add", URL, "-d", str(tmp_path), env={"GETM_TUI_CONFIG": str(config)})
    assert out.returncode == 2
    assert one_line(out).endswith("(gave up waiting after 0.5 s)")


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan", "inf"])
def test_a_bad_timeout_is_one_line(data_dir, value):
    out = cli(data_dir, "ls", env={"GETM_TUI_QUEUE_TIMEOUT": value})
    assert out.returncode == 2 and out.stdout == ""
    assert "GETM_TUI_QUEUE_TIMEOUT" in one_line(out) and "queue_timeout" in out.stderr


def test_writers_in_one_process_take_turns_without_sqlite_busy_waits(data_dir):
    """Threads of one process, each with a connection, queue on one lock per file instead of meeting
    SQLite's lock, whose busy handler sleeps 1, 2, 5... ms between tries: with no busy timeout at all,
    not one of these writes may find the file locked."""
    with Queue(data_dir) as q:
        ids = q.add_many([{"url": f"http://127.0.0.1:9/{i}", "directory": "/tmp"} for i in range(8)])
    errors: list[BaseException] = []
    start = threading.Barrier(len(ids), timeout=60)

    def write(job_id: int) -> None:
        try:
            with Queue(data_dir, timeout_ms=0, any_thread=True) as mine:
                start.wait()
                for n in range(200):
                    mine.save_resume(job_id, {"parts": [[0, 0, n, 0]]})
                    mine.log_event(job_id, "info", f"write {n}")
        except BaseException as e:  # noqa: BLE001 - any failure (opening included) is the finding
            errors.append(e)
            start.abort()  # the others must not wait for a thread that will never arrive

    # Daemon threads: a thread stuck here must fail this test, not keep the interpreter from exiting.
    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads)
    assert [e for e in errors if not isinstance(e, threading.BrokenBarrierError)] == []
    assert errors == []
    with Queue(data_dir) as q:
        assert [q.get(i).bytes_done for i in ids] == [199] * len(ids)
        assert all(len(q.events(i)) == 200 for i in ids)
