"""A damaged queue file, damaged for real: bytes overwritten in the middle, the file cut short, the header
destroyed, nothing readable at all. Real `getm-tui` processes and real SQLite.

The file is backed up as it was, every job on an undamaged page is kept with its own URL, the command goes
on with one warning line, only one process recovers however many race, and none does while another has
the file open.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from getm_tui.queue import lock
from getm_tui.queue.pagescan import TABLE_LEAF, PageFile
from getm_tui.queue.sqlite import DB_NAME, Queue, QueueCorrupt
from tests.helpers.runner_util import cli, env_for

pytestmark = pytest.mark.timeout(120)

N = 200
PAGE = 4096


def url(i: int) -> str:
    return f"https://example.org/data/{i}.bin?X-Amz-Signature=" + "5" * 40


# Stored in every job: a fixed string (not the test's temporary path) keeps the page layout, and so what
# the damage hits, the same on every run.
DOWNLOADS = "/srv/getm-tui-test/downloads"


def make_queue(data_dir: str) -> dict[int, str]:
    """200 jobs in several states, some with history; the file closed and checkpointed. id -> state."""
    with Queue(data_dir) as q:
        ids = q.add_many({"url": url(i), "directory": DOWNLOADS} for i in range(1, N + 1))
        states = {}
        for job_id in ids:
            state = ("queued", "paused", "done", "failed", "active")[job_id % 5]
            if state != "queued":
                q.update(job_id, state=state)
            states[job_id] = state
            if job_id % 10 == 0:
                q.log_event(job_id, "info", f"note {job_id}")
    return states


def job_pages(path: str) -> dict[int, int]:
    """The page each job's row is on, from the intact file; checked against SQLite before it is used."""
    cells = [c for c in PageFile(Path(path).read_bytes()).cells() if c.kind == TABLE_LEAF]
    pages = {c.rowid: c.page for c in cells if len(c.values) == 21}
    with contextlib.closing(sqlite3.connect(path)) as db:  # closed now: an open one blocks recovery
        expected = dict(db.execute("SELECT id, url FROM jobs"))
    found = {c.rowid: c.values[1] for c in cells if len(c.values) == 21}
    assert found == expected  # every job, found once, with SQLite's own values
    return pages


def damage(path: str, how: str, pages: dict[int, int] | None = None) -> set[int]:
    """Damage the file; the numbers of the pages that were hit. "middle" and "truncate" aim at the pages
    that hold jobs (the indexes and tables that come before them are not what the salvage is about). The
    bytes are the same every run: with these, SQLite's own range reads silently skip rows on intact pages
    after the damage (no error, no rows, even with cell_size_check), so only reading the raw pages keeps
    them. "index" garbles the root page of an index a listing by id never reads: only quick_check meets
    it. `pages`: job_pages of the file, when it cannot be read alone (its WAL holds more jobs)."""
    garbage = random.Random(1).randbytes
    size = os.path.getsize(path)
    assert size % PAGE == 0 and size // PAGE >= 10
    if pages is None and how in ("middle", "truncate"):
        pages = job_pages(path)
    jobs = sorted(set(pages.values())) if pages else []
    if how == "index":
        with contextlib.closing(sqlite3.connect(path)) as db:
            [root] = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'jobs_runnable'").fetchone()
    with open(path, "r+b") as f:
        if how == "middle":  # 3 KiB across a page boundary in the middle of the jobs: two pages hit
            start = jobs[len(jobs) // 2 - 1] * PAGE - 1024
            f.seek(start)
            f.write(garbage(3072))
            return {start // PAGE + 1, (start + 3071) // PAGE + 1}
        if how == "truncate":  # the last third of the jobs' pages gone, and all that follows them
            keep = jobs[0] - 1 + len(jobs) * 2 // 3
            f.truncate(keep * PAGE)
            return set(range(keep + 1, size // PAGE + 1))
        if how == "header":  # "file is not a database"
            f.seek(0)
            f.write(garbage(100))
            return {1}
        if how == "index":
            f.seek((root - 1) * PAGE)
            f.write(garbage(PAGE))
            return {root}
        if how == "garbage":  # nothing left to read
            f.seek(0)
            f.write(garbage(size))
            return set(range(1, size // PAGE + 1))
    raise AssertionError(how)


@pytest.fixture
def env(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    data = str(tmp_path / "data")
    return {"data": data, "dl": str(downloads), "db": os.path.join(data, DB_NAME)}


def run(env: dict, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    out = cli(env["data"], *args, env={"GETM_TUI_DOWNLOAD_DIR": env["dl"], **extra})
    assert "Traceback" not in out.stderr, out.stderr
    return out


def backups(env: dict) -> list[str]:
    """The backups of the queue file (their -wal and -shm beside them are not counted)."""
    return sorted(n for n in os.listdir(env["data"]) if ".corrupt-" in n and not n.endswith(("-wal", "-shm")))


WARNING = re.compile(
    r"^getm-tui: (?:WARNING|warning): the queue (\S+) was damaged \((.+)\)"
    r"(: kept .*| and no job in it could be read(?: \(lost .*\))?: starting an empty queue)"
    r"; the damaged file is saved as (\S+)$"
)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["middle", "truncate", "header"])
def test_damaged_file_is_backed_up_and_every_readable_job_kept(env, how):
    states = make_queue(env["data"])
    pages = job_pages(env["db"])
    hit = damage(env["db"], how)
    damaged = Path(env["db"]).read_bytes()
    on_good_pages = {i for i, page in pages.items() if page not in hit}
    assert on_good_pages and len(on_good_pages) < N or how == "header"

    # `show` checks the file before it reads (`ls` checks beside its listing: test_ls_* below).
    out = run(env, "show", "1", "--json")
    assert out.returncode == 0
    warning = WARNING.match(out.stderr.strip())
    assert warning and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert warning.group(1) == env["db"]
    listed = run(env, "ls", "--json")
    assert (listed.returncode, listed.stderr) == (0, "")
    kept = {j["id"]: j for j in json.loads(listed.stdout)}

    # The backup is the damaged file, byte for byte, named as the line says, and private.
    [backup] = backups(env)
    assert re.fullmatch(re.escape(DB_NAME) + r"\.corrupt-\d{8}-\d{6}", backup)
    assert warning.group(4) == os.path.join(env["data"], backup)
    assert Path(env["data"], backup).read_bytes() == damaged
    assert os.stat(os.path.join(env["data"], backup)).st_mode & 0o777 == 0o600

    # Every job on an undamaged page is kept, as it was (active ones queued again); none is made up.
    assert on_good_pages <= set(kept), sorted(on_good_pages - set(kept))
    for job_id, job in kept.items():
        assert job["url"] == f"https://example.org/data/{job_id}.bin?***"
        assert job["state"] == ("queued" if states[job_id] == "active" else states[job_id])
    with Queue(env["data"]) as q:
        assert all(j.url == url(j.id) for j in q.jobs())
    assert len(kept) >= {"middle": N * 3 // 4, "truncate": N // 4, "header": N}[how]
    # The line counts what it kept and what it lost.
    # The line counts what it kept and what it lost (the id index, on an undamaged page, says which).
    assert f"kept {len(kept)} jobs" in warning.group(3)
    lost = re.search(
        r"lost (?:at least )?(\d+) jobs? that could not be read \(id ([-\d, .]+)\)$", warning.group(3)
    )
    if len(kept) < N:
        assert lost and int(lost.group(1)) == N - len(kept), warning.group(3)
        first_lost = min(set(range(1, N + 1)) - set(kept))
        assert lost.group(2).startswith(str(first_lost))
    else:
        assert lost is None and "none" in warning.group(3)

    # The queue goes on: the next command is quiet, new ids follow the old ones, the history says why.
    again = run(env, "add", "https://example.org/new.bin")
    assert again.returncode == 0 and again.stderr == ""
    assert int(again.stdout) == N + 1
    some = min(kept)
    show = json.loads(run(env, "show", str(some), "--json").stdout)
    assert any("recovered from a damaged queue file" in e["message"] for e in show["events"])
    assert backups(env) == [backup]


@pytest.mark.slow
def test_nothing_readable_starts_an_empty_queue_and_keeps_the_backup(env):
    make_queue(env["data"])
    damage(env["db"], "garbage")
    damaged = Path(env["db"]).read_bytes()
    out = run(env, "ls")
    assert out.returncode == 0
    line = out.stderr.strip()
    assert WARNING.match(line) and "no job in it could be read: starting an empty queue" in line, line
    assert out.stdout.split() == ["ID", "STATE", "PRI", "NAME", "SIZE", "DONE", "VERDICT", "ERROR"]
    [backup] = backups(env)
    assert Path(env["data"], backup).read_bytes() == damaged
    assert run(env, "add", "https://example.org/new.bin").stdout == "1\n"


def test_the_wal_is_backed_up_and_read(env, tmp_path):
    """Jobs committed to the WAL but not yet to the main file (as a crash leaves them) are kept too."""
    make_queue(env["data"])
    pages = job_pages(env["db"])  # the main file: the first 200 jobs, where the WAL will not move them
    holder = sqlite3.connect(env["db"])  # a reader keeps the last writer from checkpointing at close
    try:
        holder.execute("SELECT count(*) FROM jobs").fetchone()
        with Queue(env["data"]) as q:
            q.add_many({"url": url(i), "directory": DOWNLOADS} for i in range(N + 1, N + 21))
        crashed = tmp_path / "crashed"
        crashed.mkdir(mode=0o700)
        for suffix in ("", "-wal"):  # the files as a crash would leave them
            shutil.copyfile(env["db"] + suffix, crashed / (DB_NAME + suffix))
    finally:
        holder.close()
    env = {**env, "data": str(crashed), "db": str(crashed / DB_NAME)}
    wal = Path(env["db"] + "-wal").read_bytes()
    assert len(wal) > 32
    hit = damage(env["db"], "middle", pages)
    # `ls` reads the damaged file on a connection of its own and meets the damage: closing that connection
    # must not checkpoint the WAL into the file and delete it before the backup.
    out = run(env, "ls", "--json")
    assert out.returncode == 2, out.stderr
    assert "was damaged" in out.stderr and out.stderr.endswith("run the command again\n")
    again = run(env, "ls", "--json")
    assert (again.returncode, again.stderr) == (0, "")
    kept = {j["id"] for j in json.loads(again.stdout)}
    assert set(range(N + 1, N + 21)) <= kept  # only in the WAL
    assert {i for i, page in pages.items() if page not in hit} <= kept
    [backup] = backups(env)
    assert Path(env["data"], backup + "-wal").read_bytes() == wal


@pytest.mark.slow
def test_no_recovery_while_a_supervisor_runs_it(env):
    make_queue(env["data"])
    damage(env["db"], "header")
    damaged = Path(env["db"]).read_bytes()
    supervisor = lock.SupervisorLock(env["data"])
    supervisor.acquire()
    try:
        out = run(env, "ls")
    finally:
        supervisor.release()
    assert out.returncode == 2 and out.stdout == ""
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"getm-tui: the queue {env['db']} is damaged (file is not a database)")
    assert f"getm-tui process {os.getpid()} runs it" in line
    assert Path(env["db"]).read_bytes() == damaged and backups(env) == []
    assert run(env, "ls").returncode == 0  # once it is gone, the next command recovers
    assert len(backups(env)) == 1


def test_no_recovery_while_another_process_has_the_file_open(env):
    make_queue(env["data"])
    damage(env["db"], "middle")
    damaged = Path(env["db"]).read_bytes()
    reader = sqlite3.connect(env["db"])
    reader.execute("SELECT count(*) FROM sqlite_master").fetchone()  # connected, in WAL mode
    try:
        out = run(env, "add", "https://example.org/new.bin")
    finally:
        reader.close()
    assert out.returncode == 2 and out.stdout == ""
    [line] = out.stderr.strip().splitlines()
    assert "is damaged" in line and "another process has it open" in line
    assert Path(env["db"]).read_bytes() == damaged and backups(env) == []


def test_the_queue_opened_without_recover_is_left_alone(env):
    make_queue(env["data"])
    damage(env["db"], "middle")
    damaged = Path(env["db"]).read_bytes()
    with pytest.raises(QueueCorrupt) as err:
        Queue(env["data"], check=True)
    assert "is damaged" in str(err.value) and "\n" not in str(err.value)
    assert Path(env["db"]).read_bytes() == damaged and backups(env) == []


@pytest.mark.parametrize(
    "args", [["ls"], pytest.param(["ls", "--json"], marks=pytest.mark.slow), ["ls", "--jsonl"]]
)
def test_ls_prints_then_says_the_check_beside_it_found_damage(env, args):
    """Damage the listing does not read, but quick_check (run beside it) does: the whole list as before,
    then the warning and the line asking for the command again, exit 2, and the file recovered."""
    make_queue(env["data"])
    whole = run(env, *args)
    assert (whole.returncode, whole.stderr) == (0, "")
    damage(env["db"], "index")
    damaged = Path(env["db"]).read_bytes()
    out = run(env, *args)
    assert out.returncode == 2 and out.stdout == whole.stdout
    warning, line = out.stderr.strip().splitlines()
    assert WARNING.match(warning), warning
    assert line.startswith(f"getm-tui: the queue {env['db']} is damaged (")
    assert line.endswith("; the list above may be incomplete: run the command again")
    [backup] = backups(env)
    assert Path(env["data"], backup).read_bytes() == damaged
    again = run(env, *args)
    assert (again.returncode, again.stderr) == (0, "")
    with Queue(env["data"], check=True) as q:
        assert [j.id for j in q.jobs()] == list(range(1, N + 1))


RACER = """
import sys
from getm_tui.cli.main import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_racing_processes_recover_once_and_lose_no_added_job(env, tmp_path):
    """Six commands start at once on a damaged file: one recovers, every added job is there, and each `ls`
    lists the recovered queue or asks to be run again."""
    make_queue(env["data"])
    pages = job_pages(env["db"])
    hit = damage(env["db"], "middle")
    procs = []
    for i in range(6):
        args = ["ls", "--json"] if i % 2 else ["add", f"https://example.org/raced-{i}.bin"]
        # Into files, not pipes: an `ls` holds the queue open while it writes, and a pipe nobody reads
        # yet would keep it (and a recovery waiting for it) from ending.
        with open(tmp_path / f"{i}.out", "w") as out, open(tmp_path / f"{i}.err", "w") as err:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", RACER, *args],
                    stdout=out,
                    stderr=err,
                    env={**env_for(env["data"]), "GETM_TUI_DOWNLOAD_DIR": env["dl"]},
                )
            )
    for p in procs:
        p.wait(timeout=90)
    results = [
        (p, *((tmp_path / f"{i}.{n}").read_text() for n in ("out", "err"))) for i, p in enumerate(procs)
    ]
    lines = [line for _, _, e in results for line in e.splitlines()]
    assert len([line for line in lines if WARNING.match(line)]) == 1, lines
    for p, _, err in results:
        if p.args[3] == "add" or p.returncode == 0:
            assert p.returncode == 0 and all(WARNING.match(line) for line in err.splitlines()), err
        else:  # an `ls` that listed the damaged file before the recovery says so, and to run it again
            assert p.returncode == 2 and err.endswith(
                "the list above may be incomplete: run the command again\n"
            )
    assert len(backups(env)) == 1
    with Queue(env["data"]) as q:
        jobs = {j.id: j.url for j in q.jobs()}
    added = [int(out) for p, out, _ in results if p.args[3] == "add"]
    assert len(added) == 3 and all(i > N for i in added)
    assert {jobs[i] for i in added} == {f"https://example.org/raced-{i}.bin" for i in (0, 2, 4)}
    assert {i for i, page in pages.items() if page not in hit} <= set(jobs)


@pytest.mark.slow
def test_the_supervisor_recovers_before_it_runs_anything(fault_server, env):
    """`run --once` on a damaged queue: the warning, then the jobs that were kept are downloaded."""
    blobs = {i: os.urandom(20_000 + i) for i in range(3)}
    urls = [fault_server.add(f"/f{i}.bin", blob) for i, blob in blobs.items()]
    with Queue(env["data"]) as q:
        q.add_many({"url": u, "directory": env["dl"]} for u in urls)
        q.add_many({"url": url(i), "directory": env["dl"]} for i in range(4, N))
        q.db.execute("UPDATE jobs SET state = 'paused' WHERE id > 3")
    damage(env["db"], "header")
    out = run(env, "run", "--once")
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "getm-tui: warning: the queue" in lines[0] and "was damaged" in lines[0]
    assert "kept 199 jobs" in lines[0]
    for i, blob in blobs.items():
        assert Path(env["dl"], f"f{i}.bin").read_bytes() == blob
    assert len(backups(env)) == 1
