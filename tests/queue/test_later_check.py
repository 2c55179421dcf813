"""A queue opened with `check="later"` (what `ls` does): quick_check runs beside the reads, `close()` gives
its verdict, and whatever way the block is left, nothing stays open or locked that would keep a recovery
from starting at once. Real files and real SQLite; the damage is test_salvage's."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from getm_tui.queue.lock import queue_file_lock
from getm_tui.queue.salvage import recover
from getm_tui.queue.sqlite import DB_NAME, Queue, QueueCorrupt
from tests.helpers.runner_util import env_for
from tests.queue.test_salvage import N, damage, make_queue


def nothing_left_open(data_dir: str) -> bool:
    """No check thread runs, and queue.lock can be taken exclusive at once (as a recovery takes it)."""
    with queue_file_lock(data_dir, exclusive=True, timeout=0):
        pass
    return not any(t.name == "queue-check" for t in threading.enumerate())


def test_a_first_open_on_an_empty_data_dir_and_a_sound_file_close_quietly(tmp_path):
    data = str(tmp_path / "data")
    with Queue(data, check="later") as q:  # no file yet: the open makes it, the check finds it sound
        assert q.jobs() == []
    make_queue(data)
    with Queue(data, check="later", recover=True) as q:
        assert [j.id for j in q.jobs()] == list(range(1, N + 1))
    assert nothing_left_open(data)
    assert not os.path.exists(os.path.join(data, DB_NAME + "-wal"))  # closed last, as any queue: checkpointed


def test_damage_only_the_check_meets_is_raised_at_close_and_left_for_the_caller(tmp_path):
    data = str(tmp_path / "data")
    make_queue(data)
    db = os.path.join(data, DB_NAME)
    damage(db, "index")
    damaged = Path(db).read_bytes()
    q = Queue(data, check="later", recover=True)
    assert [j.id for j in q.jobs()] == list(range(1, N + 1))  # the listing does not meet it
    with pytest.raises(QueueCorrupt) as err:
        q.close()
    assert err.value.path == db and "\n" not in str(err.value)
    assert Path(db).read_bytes() == damaged  # not recovered behind the caller's back
    assert nothing_left_open(data)
    done = recover(db, err.value.ino, err.value.reason, 1.0)  # nobody has it open: recovery can start
    assert done is not None and done.kept == N


@pytest.mark.parametrize("leaving", ["by close", "by an error at once"])
def test_the_wal_stays_for_the_backup_when_the_check_finds_damage(tmp_path, leaving):
    """The reader's connection is closed while the check's is open, so it does not checkpoint the WAL
    (what a crash left there) into the damaged file and delete it; also when the reader leaves before the
    check has read anything."""
    data = str(tmp_path / "data")
    make_queue(data)
    db = os.path.join(data, DB_NAME)
    holder = sqlite3.connect(db)  # keeps the next writer's close from checkpointing, as a crash would
    try:
        holder.execute("SELECT count(*) FROM sqlite_master").fetchone()
        with Queue(data) as writer:
            writer.log_event(1, "info", "only in the WAL")  # pages other than the index damaged below
        damage(db, "index")
        wal = Path(db + "-wal").read_bytes()
        q = Queue(data, check="later")
    finally:
        holder.close()
    if leaving == "by close":
        assert q.events(1)[-1].message == "only in the WAL"
        with pytest.raises(QueueCorrupt):
            q.close()
    else:
        with pytest.raises(KeyboardInterrupt), q:
            raise KeyboardInterrupt
    assert len(wal) > 32
    assert Path(db + "-wal").read_bytes() == wal


@pytest.mark.parametrize("error", [KeyboardInterrupt, BrokenPipeError])
def test_leaving_on_an_error_waits_for_no_verdict_and_releases_everything(tmp_path, error):
    """Ctrl-C, or `ls | head` closing the pipe: the error goes on (not QueueCorrupt, though the file is
    damaged), the check is stopped and its connection and queue.lock are let go."""
    data = str(tmp_path / "data")
    make_queue(data)
    damage(os.path.join(data, DB_NAME), "index")
    with pytest.raises(error), Queue(data, check="later") as q:
        q.jobs()
        raise error
    assert nothing_left_open(data)


def test_ls_into_a_pipe_closed_after_its_first_line_ends_at_once_and_quietly(tmp_path):
    """`getm-tui ls | head -1` on a queue long enough to be written in several pieces: the closed pipe
    ends the listing and the check beside it, exit 0, nothing on stderr."""
    data = str(tmp_path / "data")
    with Queue(data) as q:
        q.add_many({"url": f"https://example.org/{i}.bin", "directory": "/tmp"} for i in range(20_000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "getm_tui", "ls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(data),
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().split()[:2] == [b"ID", b"STATE"]
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b""
    assert nothing_left_open(data)
