"""SIGKILL at seeded random moments: of the whole runner (supervisor and workers), of the supervisor alone,
and of one fetch worker.

What must hold (ARCHITECTURE.md, invariants 1 and 2): every file ends byte-identical under its own name,
nothing partial is left, a restart fetches only what the resume record does not hold (no byte of a
recorded part is asked for again), what a kill loses is a few MiB per connection, no process of ours
outlives the kill, and a dead worker is replaced and its part retried without failing the job.

Real processes, real sockets on 127.0.0.1 (the fault server, throttled so the kills land mid-transfer),
real files. Each kill moment is a seeded threshold of recorded or served bytes, never a sleep; the seed
is in the test id, so a failure can be replayed with `-k seed3`, and GETM_TUI_KILL_SEEDS=50 runs more
seeds of the whole-runner test. The moments random kills rarely hit (the first instant of a job, after
the last part is recorded, between the rename and the queue's update) have tests of their own that
set that state up exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
import sqlite3
import threading
from typing import Any

import crc32c
import pytest

from benchmarks.benchlib.measure import alive
from getm_tui.engine import Options, download
from getm_tui.engine.workers import WorkerPool
from tests.helpers.faultserver import FaultServer, RequestRecord, Resource
from tests.helpers.kill_util import (
    descendants,
    fetch_workers,
    first_byte,
    gets,
    group_left,
    in_flight,
    is_probe,
    kill_group_and_wait,
    overlap,
    self_overlap,
    served,
    tcp_ports,
)
from tests.helpers.runner_util import add, cli, jobs, start, wait_for
from tests.helpers.stores import MemoryStore

pytestmark = pytest.mark.timeout(180)

MiB = 1024 * 1024
KiB = 1024
LEFTOVER = (".getm-part", ".getm-resume")

# name, size, connections, throttle per connection, server options. Four jobs with three running at
# once, so a kill can land while one job starts, others are mid-way and one may be done: a parallel
# job with a Content-MD5 (resumed hashing must re-read the kept bytes), a parallel one, a single stream
# (-c 1) and a small file read in the supervisor process itself (below one part).
QUEUE = [
    ("big.bin", 24 * MiB, 4, 4 * MiB, {"content_md5": True}),
    ("mid.bin", 12 * MiB, 3, 4 * MiB, {}),
    ("stream.bin", 3 * MiB + 17, 1, 2 * MiB, {}),
    ("tiny.bin", 700_000, 4, 1 * MiB, {}),
]
RUN_ENV = {"GETM_TUI_PART_SIZE": "4M", "GETM_TUI_MAX_ACTIVE": "3"}
# A kill loses what was fetched since the last save: at most SAVE_EVERY_SECONDS at the throttled rate,
# or SAVE_EVERY_BYTES, per connection; the margin is for a loaded machine delaying a save.
LOSS_PER_CONNECTION = 5 * MiB
PROBE_WASTE = 1 * MiB  # an abandoned probe body: a few throttle steps sent before the close is seen

# Six seeds by default (about 30 s); GETM_TUI_KILL_SEEDS=50 for a longer hunt (about 4 minutes).
SUPERVISOR_SEEDS = [
    (seed, "group" if seed % 2 == 0 else "supervisor")
    for seed in range(1, 1 + int(os.environ.get("GETM_TUI_KILL_SEEDS", "6")))
]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def _db(data_dir: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{os.path.join(data_dir, 'queue.sqlite3')}?mode=ro", uri=True, timeout=10)


def _recorded(data_dir: str) -> int:
    """Bytes the queue has recorded as fetched, over all jobs (what a kill now would keep)."""
    with _db(data_dir) as c:
        return c.execute("SELECT COALESCE(SUM(bytes_done), 0) FROM jobs").fetchone()[0]


def _rows(data_dir: str) -> dict[str, dict[str, Any]]:
    """Each job's state and resume record, by URL."""
    with _db(data_dir) as c:
        rows = c.execute("SELECT url, state, path, resume FROM jobs").fetchall()
    return {
        url: {"state": state, "path": path, "resume": json.loads(resume) if resume else None}
        for url, state, path, resume in rows
    }


def _done_intervals(record: dict[str, Any] | None) -> list[tuple[int, int]]:
    """[start, start + done) of every part a resume record holds bytes of."""
    if not record:
        return []
    return [(int(s), int(s) + int(d)) for s, _e, d, _crc in record["parts"] if int(d) > 0]


def _leftovers(directory: str) -> list[str]:
    return [n for n in os.listdir(directory) if n.endswith(LEFTOVER)]


def _supervisor_pid(runner_pid: int) -> int:
    [sup] = [p.pid for p in descendants(runner_pid) if p.ppid == runner_pid and p.name == "getm-supervisor"]
    return sup


class _Events:
    """The JSON lines a `run --json` prints, read in a thread as they come."""

    def __init__(self, proc: Any) -> None:
        self.lines: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: Any) -> None:
        for line in proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"event": "garbage", "text": line})

    def logs(self) -> list[str]:
        return [e["message"] for e in list(self.lines) if e.get("event") == "log"]

    def state(self, job_id: int, state: str) -> bool:
        return any(e.get("id") == job_id and e.get("state") == state for e in list(self.lines))


# ------------------------------------------------------------------------------------------ supervisor


@pytest.mark.parametrize(
    ("seed", "mode"), SUPERVISOR_SEEDS, ids=[f"seed{s}-kill-{m}" for s, m in SUPERVISOR_SEEDS]
)
@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_resume(fault_server: FaultServer, tmp_path, seed, mode) -> None:
    """Kill the runner's whole process group ("group") or only its supervisor ("supervisor": its fetch
    workers and fork server must then go by themselves) at a seeded moment; `run --once` finishes the
    queue fetching no byte the resume records hold, and every file is byte-identical."""
    rng = random.Random(seed)
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    files: dict[str, tuple[bytes, int, Resource]] = {}
    for name, size, conns, rate, options in QUEUE:
        data = rng.randbytes(size)
        url = fault_server.add(f"/{name}", data, rate_limit=rate, **options)
        files[url] = (data, conns, fault_server.resource(url))
    by_conns: dict[int, list[str]] = {}
    for url, (_d, conns, _r) in files.items():
        by_conns.setdefault(conns, []).append(url)
    for conns, urls in by_conns.items():
        add(data_dir, *urls, "-d", str(out_dir), "-c", str(conns))
    total = sum(len(d) for d, _c, _r in files.values())

    def sent() -> int:
        return sum(r.bytes_sent for _d, _c, r in files.values())

    # The moment: once the queue has recorded a seeded share of the bytes, a seeded number of bytes
    # more (so the kill falls anywhere between two saves of the resume records).
    record_share = rng.uniform(0.1, 0.7)
    then_more = rng.randrange(0, 6 * MiB)
    runner = start(data_dir, "run", "--json", env=RUN_ENV)
    seen: set[int] = set()
    workers: set[int] = set()
    try:
        wait_for(lambda: _recorded(data_dir) >= record_share * total or runner.poll() is not None, 90)
        mark = sent() + then_more
        wait_for(lambda: sent() >= mark or _recorded(data_dir) >= total or runner.poll() is not None, 90)
        tree = descendants(runner.pid)
        seen = {p.pid for p in tree}
        workers = fetch_workers(runner.pid)
        if mode == "group":
            kill_group_and_wait(runner.pid, seen)
            runner.wait(10)
        else:
            os.kill(_supervisor_pid(runner.pid), signal.SIGKILL)
            # Nobody kills the rest: the runner, the fork server and the fetch workers must notice
            # the supervisor is gone and exit (workers when their pipe closes).
            wait_for(lambda: not group_left(runner.pid, seen), 20)
            runner.wait(10)
            assert runner.returncode == 1
            assert "the supervisor stopped unexpectedly" in runner.stderr.read()
    finally:
        if runner.poll() is None or group_left(runner.pid, seen):
            kill_group_and_wait(runner.pid, seen)  # only after a failure above: leave nothing behind
            runner.wait(10)
    assert runner.poll() is not None
    assert not [w for w in workers if alive(w)]
    # The killed processes' connections are closed by the kernel; once the server has seen every one
    # go, every request from now on is the second run's.
    wait_for(lambda: fault_server.open_connections == 0, 20)
    before = {url: len(res.requests) for url, (_d, _c, res) in files.items()}
    rows = _rows(data_dir)
    assert all(row["state"] in ("queued", "active", "done") for row in rows.values()), rows

    res = cli(data_dir, "run", "--once", "--json", env=RUN_ENV, timeout=150)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr

    # Every file is whole, identical, under its own name (no "big (1).bin"), and nothing partial is left.
    assert sorted(os.listdir(out_dir)) == sorted(name for name, *_ in QUEUE)
    for url, (data, _c, _r) in files.items():
        assert _file_sha(str(out_dir / url.rsplit("/", 1)[1])) == _sha(data), url
    assert all(j["state"] == "done" for j in jobs(data_dir))
    assert next(j for j in jobs(data_dir) if j["name"] == "big.bin")["verdict"] == "verified"
    assert _leftovers(str(out_dir)) == []

    recorded_total = 0
    for url, (data, conns, resource) in files.items():
        row = rows[url]
        size = len(data)
        first, second = gets(resource)[: before[url]], gets(resource, before[url])
        kept = [(0, size)] if row["state"] == "done" else _done_intervals(row["resume"])
        recorded = sum(b - a for a, b in kept)
        recorded_total += recorded
        if row["state"] == "done" or (row["resume"] or {}).get("finished"):
            # Done, or renamed to its final name just before the kill: nothing to ask the server.
            assert second == [], f"{url} was finished before the kill, yet fetched again"
            continue
        # Nothing the resume record holds is asked for again, and nothing twice.
        parts = [served(r) for r in second if not is_probe(r)]
        assert overlap(parts, kept) == [], (url, kept, [r.range for r in second])
        assert self_overlap(parts) == [], (url, [r.range for r in second])
        # A probe is abandoned right away when there is something to resume: its body costs a few
        # throttle steps at most (and is the whole download when nothing is kept and the file is small).
        probes = [r for r in second if is_probe(r)]
        assert len(probes) == 1, [r.range for r in second]
        if recorded:
            assert probes[0].body_bytes <= PROBE_WASTE
        # What the kill lost: fetched by the first run, not in the record. A few MiB per connection.
        lost = sum(r.body_bytes for r in first) - recorded
        assert lost <= conns * LOSS_PER_CONNECTION + PROBE_WASTE, (url, lost)
    # The kill waited for a share of the bytes to be recorded: resume had work to skip.
    assert recorded_total >= record_share * total * 0.5


@pytest.mark.slow
def test_sigkill_right_after_a_download_starts_resumes_under_the_same_name(
    fault_server: FaultServer, tmp_path
) -> None:
    """A kill in the first moments of a job, before any progress is saved, must not orphan its
    `.getm-part`: the restart takes the same name (not `slow (1).bin`) and leaves nothing behind."""
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    big, small = os.urandom(4 * MiB), os.urandom(300_000)
    urls = [
        fault_server.add("/slow.bin", big, rate_limit=1 * MiB),
        fault_server.add("/small.bin", small, rate_limit=200 * KiB),
    ]
    add(data_dir, *urls, "-d", str(out_dir), "-c", "2")
    runner = start(data_dir, "run", "--json", env={"GETM_TUI_PART_SIZE": "1M"})
    seen: set[int] = set()
    try:
        # Both partial files exist (the small one is read in the supervisor itself), no byte of either
        # is recorded yet (the first save comes a second in).
        wait_for(lambda: all((out_dir / f"{n}.getm-part").exists() for n in ("slow.bin", "small.bin")), 30)
        seen = {p.pid for p in descendants(runner.pid)}
        assert _recorded(data_dir) == 0
    finally:
        kill_group_and_wait(runner.pid, seen)
        runner.wait(10)
    res = cli(data_dir, "run", "--once", env={"GETM_TUI_PART_SIZE": "1M"}, timeout=120)
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(out_dir)) == ["slow.bin", "small.bin"]
    assert (out_dir / "slow.bin").read_bytes() == big
    assert (out_dir / "small.bin").read_bytes() == small


# ------------------------------------------------------------------------------------------ workers

WORKER_SIZE = 16 * MiB
WORKER_RATE = 4 * MiB  # per connection: a 2 MiB part takes half a second
WORKER_PART = 2 * MiB
MID_BODY = 512 * KiB  # the victim has at least this much of its part left: the kill lands mid-body


def _pick_victim(rng: random.Random, resource: Resource, pids: list[int]) -> tuple[int, RequestRecord] | None:
    """A worker (chosen by the seed among those busy) that is in the middle of a part request."""
    busy = []
    for pid in sorted(pids):
        reqs = in_flight(resource, tcp_ports(pid), MID_BODY)
        if reqs:
            busy.append((pid, reqs[0]))
    return rng.choice(busy) if busy else None


def _check_retried(resource: Resource, victim_request: RequestRecord, size: int) -> None:
    """The killed request was cut short, its part was asked for again from about where it stopped
    (no earlier than its start, no later than what had been sent), and nothing else was fetched twice."""
    reqs = gets(resource)
    index = next(
        i
        for i, r in enumerate(reqs)
        if r.client_port == victim_request.client_port and r.range == victim_request.range
    )
    killed = reqs[index]
    assert killed.body_bytes < killed.body_length, "the kill did not interrupt the request"
    start, sent_to = served(killed)
    end = start + killed.body_length
    retries = [
        r
        for r in reqs[index + 1 :]
        if not is_probe(r) and start <= first_byte(r) <= sent_to and first_byte(r) + r.body_length == end
    ]
    assert retries, f"part {start}-{end} was not retried: {[r.range for r in reqs[index + 1 :]]}"
    assert retries[0].body_bytes == retries[0].body_length
    parts = [served(r) for r in reqs if not is_probe(r) and r is not killed]
    assert self_overlap(parts) == []
    fetched = sum(r.body_bytes for r in reqs if not is_probe(r))
    assert size <= fetched <= size + killed.body_bytes


WORKER_SEEDS = [11, 12, 13]


@pytest.mark.slow
@pytest.mark.usefixtures("engine_hygiene")
@pytest.mark.parametrize("seed", WORKER_SEEDS, ids=[f"seed{s}" for s in WORKER_SEEDS])
def test_worker_killed_mid_part_in_the_library(fault_server: FaultServer, tmp_path, caplog, seed) -> None:
    """download() with four connections; one worker, chosen by the seed, is killed mid-part at a seeded
    moment: the pool starts a new one, the part is retried from where it was, the download succeeds."""
    rng = random.Random(seed)
    data = rng.randbytes(WORKER_SIZE)
    url = fault_server.add("/w.bin", data, rate_limit=WORKER_RATE, content_md5=True)
    resource = fault_server.resource(url)
    opts = Options(part_size=WORKER_PART, retries=4, retry_base=0.05)
    caplog.set_level(logging.INFO, logger="getm_tui")
    outcome: dict[str, Any] = {}

    def fetch(pool: WorkerPool) -> None:
        try:
            outcome["result"] = download(url, str(tmp_path), concurrency=4, options=opts, pool=pool)
        except BaseException as e:  # reported by the test thread
            outcome["error"] = e

    with WorkerPool(opts.http, size=4) as pool:
        pids_before = [w.process.pid for w in pool.workers]
        thread = threading.Thread(target=fetch, args=(pool,), daemon=True)
        thread.start()
        threshold = rng.uniform(0.1, 0.7) * WORKER_SIZE
        wait_for(lambda: resource.bytes_sent >= threshold or not thread.is_alive(), 60)
        victim, request = wait_for(lambda: _pick_victim(rng, resource, pids_before), 30)
        os.kill(victim, signal.SIGKILL)
        thread.join(90)
        assert not thread.is_alive()
        pids_after = [w.process.pid for w in pool.workers]
        assert all(w.process.is_alive() for w in pool.workers)

    assert "error" not in outcome, repr(outcome.get("error"))
    result = outcome["result"]
    assert _file_sha(result.path) == _sha(data)
    assert result.verdict == "verified" and result.retries >= 1
    assert _leftovers(str(tmp_path)) == []
    # The pool replaced exactly the victim, in its place.
    index = pids_before.index(victim)
    assert [p for i, p in enumerate(pids_after) if p != pids_before[i]] == [pids_after[index]]
    assert not alive(victim)
    messages = [r.getMessage() for r in caplog.records]
    assert f"fetch worker {index} (pid {victim}) died; starting a new one" in messages
    assert any("fetch worker process died; retry 1/" in m for m in messages), messages
    _check_retried(resource, request, WORKER_SIZE)


RUNNER_WORKER_SEEDS = [21, 22]


@pytest.mark.slow
@pytest.mark.parametrize("seed", RUNNER_WORKER_SEEDS, ids=[f"seed{s}" for s in RUNNER_WORKER_SEEDS])
def test_worker_killed_mid_part_in_the_runner(fault_server: FaultServer, tmp_path, seed) -> None:
    """The same through `getm-tui run`: the job is done (not failed), the new worker shows up under the
    fork server, the job's log names the dead worker and the retry. Then an idle worker of the spare
    pool dies between jobs: the next job must not fail on it either."""
    rng = random.Random(seed)
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    data = rng.randbytes(WORKER_SIZE)
    url = fault_server.add("/w.bin", data, rate_limit=WORKER_RATE)
    resource = fault_server.resource(url)
    [job] = add(data_dir, url, "-d", str(out_dir), "-c", "4")
    runner = start(data_dir, "run", "--json", env={"GETM_TUI_PART_SIZE": "2M", "GETM_TUI_MAX_ACTIVE": "1"})
    events = _Events(runner)
    try:
        wait_for(lambda: len(fetch_workers(runner.pid)) == 4, 30)
        threshold = rng.uniform(0.1, 0.7) * WORKER_SIZE
        wait_for(lambda: resource.bytes_sent >= threshold or runner.poll() is not None, 60)
        victim, request = wait_for(lambda: _pick_victim(rng, resource, sorted(fetch_workers(runner.pid))), 30)
        before = fetch_workers(runner.pid)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: events.state(job, "done") or events.state(job, "failed"), 90)
        assert events.state(job, "done"), events.lines[-20:]
        # Replaced: four workers again, the victim gone, one new pid.
        after = wait_for(lambda: (w := fetch_workers(runner.pid)) and len(w) == 4 and w, 10)
        assert victim not in after and len(after - before) == 1
        logs = events.logs()
        died = f"(pid {victim}) died; starting a new one"
        assert any(died in m and m.startswith(f"job {job}:") for m in logs), logs
        assert any("fetch worker process died; retry 1/" in m for m in logs), logs
        _check_retried(resource, request, WORKER_SIZE)
        assert _file_sha(str(out_dir / "w.bin")) == _sha(data)

        # An idle worker of the pool the finished job handed back dies; the next job reuses that pool.
        idle_victim = rng.choice(sorted(after))
        os.kill(idle_victim, signal.SIGKILL)
        wait_for(lambda: not alive(idle_victim), 10)
        data2 = rng.randbytes(6 * MiB)
        url2 = fault_server.add("/w2.bin", data2)
        [job2] = add(data_dir, url2, "-d", str(out_dir), "-c", "4")
        wait_for(lambda: events.state(job2, "done") or events.state(job2, "failed"), 60)
        assert events.state(job2, "done"), [e for e in events.lines if e.get("id") == job2]
        assert (out_dir / "w2.bin").read_bytes() == data2
        assert not [e for e in events.lines if e.get("state") == "failed"]
    finally:
        runner.send_signal(signal.SIGTERM)
        try:
            runner.wait(15)
        finally:
            if runner.poll() is None:
                kill_group_and_wait(runner.pid, [])
                runner.wait(10)
    assert runner.returncode == 0
    assert _leftovers(str(out_dir)) == []


@pytest.mark.slow
@pytest.mark.usefixtures("engine_hygiene")
@pytest.mark.parametrize("seed", [31, 32], ids=["seed31", "seed32"])
def test_a_dead_idle_worker_does_not_fail_the_next_download(
    fault_server: FaultServer, tmp_path, seed
) -> None:
    """A pool kept between downloads (as the supervisor keeps its spares) loses a worker while idle; the
    next download on it must succeed, and the pool must have four living workers again."""
    rng = random.Random(seed)
    data = rng.randbytes(5 * MiB)
    url = fault_server.add("/idle.bin", data)
    opts = Options(part_size=MiB, retries=4, retry_base=0.05)
    with WorkerPool(opts.http, size=4) as pool:
        victim = pool.workers[rng.randrange(4)].process
        os.kill(victim.pid, signal.SIGKILL)
        wait_for(lambda: not alive(victim.pid), 10)
        result = download(url, str(tmp_path), concurrency=4, options=opts, pool=pool)
        assert len(pool.workers) == 4 and all(w.process.is_alive() for w in pool.workers)
        assert victim.pid not in [w.process.pid for w in pool.workers]
    assert _file_sha(result.path) == _sha(data)
    assert _leftovers(str(tmp_path)) == []


@pytest.mark.usefixtures("engine_hygiene")
@pytest.mark.parametrize("content_md5", [False, True], ids=["crc32c-only", "md5-in-order"])
def test_killed_after_the_last_part_was_recorded_commits_without_fetching(
    fault_server: FaultServer, tmp_path, content_md5
) -> None:
    """A kill after every part is recorded but before the commit (the final fsync is the long part of
    that window): the next attempt has nothing to fetch. It must verify what is on disk (re-reading it
    when an ordered hash such as md5 is expected) and commit, asking the server for no part at all."""
    from getm_tui.engine import control
    from getm_tui.engine.plan import split

    data = os.urandom(6 * MiB + 5)
    url = fault_server.add("/whole.bin", data, content_md5=content_md5)
    resource = fault_server.resource(url)
    target = tmp_path / "whole.bin"
    parts = split(len(data), MiB)
    for p in parts:
        p.done = p.length or 0
        p.crc = crc32c.crc32c(data[p.start : p.end])
    (tmp_path / "whole.bin.getm-part").write_bytes(data)
    store = control.ControlFile(str(tmp_path / "whole.bin.getm-resume"))
    store.save(control.record(url, len(data), resource.etag, parts, str(target)))
    store.close()
    opts = Options(part_size=MiB, retries=2, retry_base=0.05)
    result = download(url, str(tmp_path), concurrency=4, options=opts)
    assert result.path == str(target) and result.resumed == len(data)
    assert result.verdict == ("verified" if content_md5 else "unverified")
    assert _file_sha(result.path) == _sha(data)
    assert _leftovers(str(tmp_path)) == []
    assert [r for r in gets(resource) if not is_probe(r)] == []


@pytest.mark.slow
@pytest.mark.usefixtures("engine_hygiene")
@pytest.mark.parametrize("moment", ["after-the-rename", "between-link-and-unlink"])
def test_killed_after_the_commit_finds_the_file_finished(fault_server: FaultServer, tmp_path, moment) -> None:
    """A kill after the file took its final name but before the caller recorded the end (the supervisor
    updates the queue a moment later): the next attempt must not fetch the file again (under
    `NAME (1)`), but report it finished, with the verdict it had."""
    data = os.urandom(3 * MiB)
    url = fault_server.add("/done.bin", data, content_md5=True)
    resource = fault_server.resource(url)
    store = MemoryStore()
    opts = Options(part_size=MiB, retries=2, retry_base=0.05)
    first = download(url, str(tmp_path), concurrency=4, options=opts, store=store)
    assert first.verdict == "verified" and store.record and store.record["finished"]
    if moment == "between-link-and-unlink":
        os.link(first.path, first.path + ".getm-part")
    asked = len(resource.requests)
    again = download(url, first.path, concurrency=4, options=opts, store=store)
    assert len(resource.requests) == asked, "fetched again"
    assert (again.path, again.size, again.verdict, again.crc32c) == (
        first.path,
        len(data),
        "verified",
        first.crc32c,
    )
    assert again.outcomes == first.outcomes
    assert sorted(os.listdir(tmp_path)) == ["done.bin"]
    assert _file_sha(first.path) == _sha(data)


@pytest.mark.slow
def test_runner_killed_after_the_commit_marks_the_job_done(fault_server: FaultServer, tmp_path) -> None:
    """The queue side of the test above: a job left active with its file renamed and its record saying
    finished (what a kill between the rename and the queue's update leaves) is done on the next run,
    with its verdict, and the server is not asked for anything."""
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    data = os.urandom(3 * MiB)
    url = fault_server.add("/late.bin", data, content_md5=True)
    resource = fault_server.resource(url)
    store = MemoryStore()
    # The engine's part of the job, exactly as the supervisor runs it, up to the kill.
    finished = download(url, str(out_dir), concurrency=4, options=Options(part_size=MiB), store=store)
    [job_id] = add(data_dir, url, "-d", str(out_dir))
    with sqlite3.connect(os.path.join(data_dir, "queue.sqlite3")) as c:
        c.execute(
            "UPDATE jobs SET state = 'active', path = ?, resume = ? WHERE id = ?",
            (finished.path, json.dumps(store.record), job_id),
        )
    asked = len(resource.requests)
    res = cli(data_dir, "run", "--once")
    assert res.returncode == 0, res.stderr
    [job] = jobs(data_dir)
    assert (job["state"], job["verdict"]) == ("done", "verified")
    assert len(resource.requests) == asked
    assert sorted(os.listdir(out_dir)) == ["late.bin"]
    assert _file_sha(str(out_dir / "late.bin")) == _sha(data)


# -- a host that dies ----------------------------------------------------------------------------


def _hosts(supervisor: int) -> list[int]:
    """The supervisor's job hosts, by the name each gives itself."""
    return [
        p.pid for p in descendants(supervisor) if p.ppid == supervisor and p.name.startswith("getm-host-")
    ]


@pytest.mark.slow
def test_a_host_that_dies_fails_its_job_and_the_next_job_runs_in_a_new_one(fault_server, tmp_path):
    data_dir, out = str(tmp_path / "q"), tmp_path / "out"
    out.mkdir()
    slow = fault_server.add("/slow.bin", os.urandom(2 * MiB), rate_limit=512 * KiB)
    quick_data = os.urandom(3 * MiB)
    quick = fault_server.add("/quick.bin", quick_data)
    add(data_dir, slow, "-d", str(out), "-c", "2")
    add(data_dir, quick, "-d", str(out), "-c", "2")
    runner = start(data_dir, "run", "--once", "--json", env={"GETM_TUI_MAX_ACTIVE": "1"})
    seen: set[int] = set()
    try:
        wait_for(lambda: fault_server.resource(slow).bytes_sent > 256 * KiB, 30)
        supervisor = _supervisor_pid(runner.pid)
        [host] = _hosts(supervisor)  # one job at a time: one host
        seen = {p.pid for p in descendants(runner.pid)}
        os.kill(host, signal.SIGKILL)
        runner.wait(60)
        # The dead host's fork server and fetch workers go by themselves.
        wait_for(lambda: not group_left(runner.pid, seen), 20)
    finally:
        if runner.poll() is None or group_left(runner.pid, seen):
            kill_group_and_wait(runner.pid, seen)
            runner.wait(10)
    assert runner.returncode == 1  # a download failed
    first, second = jobs(data_dir)
    assert first["state"] == "failed"
    assert "internal error: the process running this job stopped (exit code -9)" in first["error"]
    assert second["state"] == "done"
    assert (out / "quick.bin").read_bytes() == quick_data
    # The failed job resumes from what the dead host recorded, like any other failure.
    assert cli(data_dir, "retry", str(first["id"])).returncode == 0
    assert cli(data_dir, "run", "--once", timeout=60).returncode == 0
    assert [j["state"] for j in jobs(data_dir)] == ["done", "done"]
    assert (out / "slow.bin").read_bytes() == fault_server.resource(slow).data
