"""Group commit (runner/commit.py): finished files share one sync, and a job is recorded done only after
the sync of its file has returned (ARCHITECTURE.md, invariant 2).

A power cut cannot be simulated, so the order is what is tested: a real supervisor, in this process, runs
a queue of small files from the fault server with a sync that looks at the queue file from another
connection when it is called and when it returns, and finds none of its jobs done at either moment. Kills
at seeded moments check the other half: a killed runner leaves no job done without its whole file, and
the next run finishes the queue without fetching a finished file again.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from getm_tui.config import Settings
from getm_tui.runner.commit import GroupCommit, Synced, sync_paths
from getm_tui.runner.supervisor import Supervisor
from tests.helpers.faultserver import FaultServer
from tests.helpers.kill_util import descendants, kill_group_and_wait
from tests.helpers.runner_util import add, cli, jobs, start, wait_for

pytestmark = pytest.mark.timeout(120)

KiB = 1024


def _queue_rows(data_dir: str) -> dict[str, tuple[str, str | None]]:
    """Each job's (state, path) by URL, read from a connection of our own."""
    uri = f"file:{os.path.join(data_dir, 'queue.sqlite3')}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=10) as c:
        return {url: (state, path) for url, state, path in c.execute("SELECT url, state, path FROM jobs")}


def _resume_of(data_dir: str, path: str) -> dict[str, object]:
    """The resume record of the job whose file is `path`, read from a connection of our own."""
    uri = f"file:{os.path.join(data_dir, 'queue.sqlite3')}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=10) as c:
        (text,) = c.execute("SELECT resume FROM jobs WHERE path = ?", (path,)).fetchone()
    return json.loads(text) if text else {}


def _small_files(
    fault_server: FaultServer, rng: random.Random, n: int, **options: object
) -> dict[str, bytes]:
    files = {}
    for i in range(n):
        data = rng.randbytes(rng.randrange(1, 96 * KiB))
        files[fault_server.add(f"/small-{i}.bin", data, **options)] = data
    return files


def test_jobs_that_finish_during_a_sync_share_the_next_one() -> None:
    started, release = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    def sync(paths: Iterable[str]) -> None:
        batches.append(list(paths))
        started.set()
        release.wait()

    commits = GroupCommit(sync)
    try:
        commits.add(1, "one", "/d/1")
        started.wait()
        for job_id in (2, 3, 4):
            commits.add(job_id, str(job_id), f"/d/{job_id}")
        release.set()
        synced: list[Synced] = []
        wait_for(lambda: synced.extend(commits.take()) or len(synced) == 4)
    finally:
        release.set()
        commits.close()
    assert batches == [["/d/1"], ["/d/2", "/d/3", "/d/4"]]
    assert synced == [Synced(1, "one", None), *(Synced(i, str(i), None) for i in (2, 3, 4))]


def test_a_failed_sync_hands_its_jobs_back_with_the_error() -> None:
    def sync(paths: Iterable[str]) -> None:
        list(paths)
        raise OSError(5, "Input/output error")

    commits = GroupCommit(sync)
    try:
        commits.add(7, None, "/d/7")
        synced: list[Synced] = []
        wait_for(lambda: synced.extend(commits.take()) or synced)
    finally:
        commits.close()
    assert synced == [Synced(7, None, "cannot sync the file to disk: Input/output error")]


@dataclass
class _Done:
    path: str


def test_files_left_at_their_partial_names_are_moved_to_free_names_before_the_sync(tmp_path) -> None:
    for name in ("a.bin", "b.bin", "c.bin"):
        (tmp_path / f"{name}.getm-part").write_bytes(name.encode())
    (tmp_path / "b.bin").write_bytes(b"someone else's")  # taken: never clobbered
    (tmp_path / "c.bin").write_bytes(b"an older copy")  # a job added with overwrite replaces it
    synced_paths: list[str] = []

    def sync(paths: Iterable[str]) -> None:
        for path in paths:
            assert not os.path.exists(path + ".getm-part")  # the name is there when the sync runs
            synced_paths.append(path)

    commits = GroupCommit(sync)
    try:
        for job_id, name in enumerate(("a.bin", "b.bin", "gone.bin")):
            path = str(tmp_path / name)
            commits.add(job_id, _Done(path), path, "free")
        commits.add(3, _Done(str(tmp_path / "c.bin")), str(tmp_path / "c.bin"), "replace")
        synced: list[Synced] = []
        wait_for(lambda: synced.extend(commits.take()) or len(synced) == 4)
    finally:
        commits.close()
    moved = [str(tmp_path / "a.bin"), str(tmp_path / "b (1).bin")]
    assert sorted(synced) == sorted(
        [
            Synced(0, _Done(moved[0]), None),
            Synced(1, _Done(moved[1]), None),
            Synced(
                2,
                _Done(str(tmp_path / "gone.bin")),
                "cannot move the file to its name: No such file or directory",
            ),
            Synced(3, _Done(str(tmp_path / "c.bin")), None),
        ]
    )
    assert synced_paths == [*moved, str(tmp_path / "c.bin")]
    assert (tmp_path / "b.bin").read_bytes() == b"someone else's"
    assert (tmp_path / "b (1).bin").read_bytes() == b"b.bin"
    assert (tmp_path / "c.bin").read_bytes() == b"c.bin"
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b (1).bin", "b.bin", "c.bin"]


@pytest.mark.parametrize("has_syncfs", [True, False])
def test_sync_paths_syncs_real_files_and_reports_a_missing_one(tmp_path, monkeypatch, has_syncfs) -> None:
    from getm_tui.runner import commit

    if not has_syncfs:
        monkeypatch.setattr(commit, "_syncfs", lambda: None)
    paths = []
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"x")
        paths.append(str(tmp_path / name))
    sync_paths(paths)
    with pytest.raises(OSError):
        sync_paths([str(tmp_path / "gone" / "c")])


@pytest.mark.slow
def test_a_job_is_recorded_done_only_after_the_sync_of_its_file_returns(
    fault_server: FaultServer, tmp_path
) -> None:
    rng = random.Random(16)
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    files = _small_files(fault_server, rng, 24)
    urls = list(files)
    add(data_dir, *urls[:20], "-d", str(out_dir))
    add(data_dir, *urls[20:], "-d", str(out_dir), "--no-sync")
    seen: list[tuple[str, str, str, bool]] = []  # path, state when the sync began, when it ended, bytes ok
    by_path = {str(out_dir / f"small-{i}.bin"): files[url] for i, url in enumerate(urls)}

    def sync(paths: Iterable[str]) -> None:
        paths = list(paths)
        before = {p: state for state, p in _queue_rows(data_dir).values()}
        # The finished record was committed before the file took its name (what a kill now finds).
        assert [p for p in paths if "finished" not in _resume_of(data_dir, p)] == []
        sync_paths(paths)
        after = {p: state for state, p in _queue_rows(data_dir).values()}
        for p in paths:
            with open(p, "rb") as f:
                intact = f.read() == by_path[p]
            seen.append((p, before[p], after[p], intact))

    sup = Supervisor(data_dir, Settings(download_dir=str(out_dir), max_active=8), once=True, listen=False)
    sup._commits = GroupCommit(sync)
    assert sup.serve() == 0

    rows = _queue_rows(data_dir)
    assert {url: state for url, (state, _p) in rows.items()} == dict.fromkeys(urls, "done")
    for path, data in by_path.items():
        with open(path, "rb") as f:
            assert f.read() == data
    synced = {p for p, *_ in seen}
    # Every job with sync on went through a sync, under its final name with all its bytes, and was not
    # done when the sync began nor when it returned; the --no-sync jobs went through none.
    assert synced == {rows[url][1] for url in urls[:20]}
    assert [s for s in seen if s[1:] != ("active", "active", True)] == []
    assert len(seen) == 20


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_runner_killed_among_small_jobs_leaves_no_job_done_without_its_file(
    fault_server: FaultServer, tmp_path, seed
) -> None:
    rng = random.Random(seed)
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    files = _small_files(fault_server, rng, 40, rate_limit=256 * KiB)
    add(data_dir, *files, "-d", str(out_dir))
    kill_after = rng.randrange(1, 39)  # jobs recorded done
    runner = start(data_dir, "run", "--json", env={"GETM_TUI_MAX_ACTIVE": "8"})
    try:
        wait_for(
            lambda: (
                sum(s == "done" for s, _p in _queue_rows(data_dir).values()) >= kill_after
                or runner.poll() is not None
            ),
            90,
        )
        kill_group_and_wait(runner.pid, {p.pid for p in descendants(runner.pid)})
        runner.wait(10)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        for stream in (runner.stdout, runner.stderr):
            if stream is not None:
                stream.close()
    asked = {url: len(fault_server.resource(url).requests) for url in files}
    for url, (state, path) in _queue_rows(data_dir).items():
        if state == "done":
            assert path is not None
            with open(path, "rb") as f:
                assert f.read() == files[url], url
    done_before = {url for url, (state, _p) in _queue_rows(data_dir).items() if state == "done"}

    out = cli(data_dir, "run", "--once", timeout=90)
    assert out.returncode == 0, out.stderr
    assert all(j["state"] == "done" for j in jobs(data_dir))
    assert sorted(os.listdir(out_dir)) == sorted(f"small-{i}.bin" for i in range(len(files)))
    for i, data in enumerate(files.values()):
        assert (out_dir / f"small-{i}.bin").read_bytes() == data
    # A job done before the kill is not asked for again.
    assert [url for url in done_before if len(fault_server.resource(url).requests) != asked[url]] == []
