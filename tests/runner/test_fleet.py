"""A fleet: several `getm-tui run --queue URL` processes, each with a data dir of its own (standing in for
hosts), share one PostgreSQL queue and one download directory (the shared filesystem).

What must hold: each job is run by one runner at a time and recorded done once; files are byte-identical;
a runner killed mid-download has its job taken over once its lease runs out, and the new holder fetches
none of the bytes the resume record holds; a runner that wakes after losing its lease writes nothing
about that job and stops it. Real processes, the session's PostgreSQL, the fault server on loopback.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
from typing import Any

import pytest

from getm_tui.queue.interface import open_queue
from tests.helpers.faultserver import FaultServer
from tests.helpers.kill_util import descendants, gets, is_probe, kill_group_and_wait, overlap, served
from tests.helpers.runner_util import cli, start, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MiB = 1024 * 1024
LEASE = "2"  # seconds: a lost runner's jobs come back quickly
ENV = {
    "GETM_TUI_PART_SIZE": "1M",
    "GETM_TUI_MAX_ACTIVE": "2",
    "GETM_TUI_CONCURRENCY": "2",
    "GETM_TUI_READ_TIMEOUT": "2",
    "GETM_TUI_RETRIES": "4",
    "GETM_TUI_LEASE_TIMEOUT": LEASE,
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _runner(tmp_path, name: str, url: str, *args: str) -> subprocess.Popen[str]:
    return start(str(tmp_path / name), "run", "--json", *args, env={**ENV, "GETM_TUI_QUEUE": url})


def _add(tmp_path, url: str, out_dir, *urls: str) -> list[int]:
    res = cli(str(tmp_path / "adder"), "add", "-d", str(out_dir), *urls, env={"GETM_TUI_QUEUE": url})
    assert res.returncode == 0, res.stderr
    return [int(x) for x in res.stdout.split()]


def _done_events(url: str, job_id: int) -> list[str]:
    with open_queue(url) as q:
        return [e.message for e in q.events(job_id) if e.kind == "done"]


def test_three_runners_drain_a_mixed_queue_with_faults(fault_server: FaultServer, postgres_url, tmp_path):
    rng = random.Random(17)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    faults: list[dict[str, Any]] = [
        {},
        {"drop_after": 300_000, "drop_times": 2},
        {"statuses": [503, 429], "retry_after": "0"},
        {"drop_after": 200_000, "drop_times": 1, "drop_rst": True},
        {"content_md5": True},
        {"ignore_range": True},
        {"short_body": 1000, "short_body_times": 1},
        {"rate_limit": 4 * MiB},
    ]
    files: dict[str, bytes] = {}
    for i in range(16):
        data = rng.randbytes(rng.choice([150_000, 900_000, 2 * MiB + 12345]))
        files[fault_server.add(f"/fleet/f{i}.bin", data, **faults[i % len(faults)])] = data
    ids = _add(tmp_path, postgres_url, out_dir, *files)
    runners = [_runner(tmp_path, f"host{i}", postgres_url, "--once") for i in range(3)]
    outputs = [r.communicate(timeout=150) for r in runners]
    assert [r.returncode for r in runners] == [0, 0, 0], [o[1][-2000:] for o in outputs]
    for url, data in files.items():
        assert _file_sha(str(out_dir / url.rsplit("/", 1)[1])) == _sha(data), url
    with open_queue(postgres_url) as q:
        assert {j.state for j in q.jobs()} == {"done"}
    for job_id in ids:  # run to its end by one runner: recorded done once
        assert len(_done_events(postgres_url, job_id)) == 1, job_id
    assert not [n for n in os.listdir(out_dir) if n.endswith((".getm-part", ".getm-resume"))]


def _recorded(url: str, job_id: int) -> tuple[int, list[tuple[int, int]]]:
    """Bytes the queue holds as fetched for the job, and the intervals its resume record holds."""
    with open_queue(url) as q:
        record = q.load_resume(job_id)
        done = q.get(job_id).bytes_done
    parts = record["parts"] if record else []
    return done, [(int(s), int(s) + int(d)) for s, _e, d, *_ in parts if int(d) > 0]


def test_sigkill_of_the_holder_is_taken_over_without_fetching_what_was_recorded(
    fault_server: FaultServer, postgres_url, tmp_path
):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # Slow enough that the job still runs while the viewers look (about 12 s for the whole file).
    data = random.Random(5).randbytes(12 * MiB + 321)
    url = fault_server.add("/fleet/throttled.bin", data, rate_limit=512 * 1024)
    resource = fault_server.resource(url)
    [job] = _add(tmp_path, postgres_url, out_dir, url)
    first = _runner(tmp_path, "host-a", postgres_url)
    seen: set[int] = set()
    try:
        wait_for(lambda: _recorded(postgres_url, job)[0] >= 1 * MiB or first.poll() is not None, 60)
        holder = _shows_its_holder(tmp_path, postgres_url, job, first)
        seen = {p.pid for p in descendants(first.pid)}
        kill_group_and_wait(first.pid, seen)
        first.wait(10)
    finally:
        if first.poll() is None:
            kill_group_and_wait(first.pid, seen)
            first.wait(10)
    wait_for(lambda: fault_server.open_connections == 0, 20)
    wait_for(lambda: _runners(tmp_path, postgres_url)[0]["status"] == "lost", 30)  # no more beats
    _, kept = _recorded(postgres_url, job)
    before = len(resource.requests)
    resource.configure(rate_limit=None)
    with open_queue(postgres_url) as q:
        assert q.get(job).state == "active"  # held by a lease no one renews
    second = cli(
        str(tmp_path / "host-b"), "run", "--once", "--json", env={**ENV, "GETM_TUI_QUEUE": postgres_url}
    )
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr
    assert _file_sha(str(out_dir / "throttled.bin")) == _sha(data)
    parts = [served(r) for r in gets(resource, before) if not is_probe(r)]
    assert kept and overlap(parts, kept) == [], (kept, parts)
    with open_queue(postgres_url) as q:
        messages = [e.message for e in q.events(job)]
    assert f"taken over: its runner ({holder['host']} pid {holder['pid']}) stopped renewing" in messages
    assert len(_done_events(postgres_url, job)) == 1
    lost, left = _runners(tmp_path, postgres_url)
    assert (lost["pid"], lost["status"], left["status"], left["jobs_done"]) == (
        holder["pid"],
        "lost",
        "stopped",
        1,
    )


def _runners(tmp_path, url: str) -> list[dict[str, Any]]:
    res = cli(str(tmp_path / "viewer"), "runners", "--json", "--queue", url)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _shows_its_holder(tmp_path, url: str, job: int, runner: subprocess.Popen[str]) -> dict[str, Any]:
    """`ls --json`, `ls`, `show` and `runners` all name the runner holding the running job, and the
    job's recent speed as that runner wrote it with its progress."""
    assert runner.stdout is not None
    start_event = json.loads(runner.stdout.readline())
    assert start_event["event"] == "start"
    viewer = str(tmp_path / "viewer")
    [row] = json.loads(cli(viewer, "ls", "--json", "--queue", url).stdout)
    holder = row["runner"]
    assert holder == {"host": socket.gethostname(), "pid": start_event["pid"]}
    assert row["rate"] > 0
    table = cli(viewer, "ls", "--queue", url).stdout.splitlines()
    assert table[0].split()[-3:] == ["SPEED", "RUNNER", "ERROR"]
    assert f"{holder['host']}:{holder['pid']}" in table[1] and "/s " in table[1]
    shown = cli(viewer, "show", str(job), "--queue", url).stdout
    assert f"runner:      {holder['host']} pid {holder['pid']}" in shown
    assert [line for line in shown.splitlines() if line.startswith("speed:") and line.endswith("/s")]
    [info] = _runners(tmp_path, url)
    assert (info["host"], info["pid"], info["status"], info["jobs_held"]) == (
        holder["host"],
        holder["pid"],
        "alive",
        1,
    )
    listed = cli(viewer, "runners", "--queue", url).stdout.splitlines()
    assert listed[0].split()[:4] == ["ID", "HOST", "PID", "STATUS"] and "alive" in listed[1]
    return holder


def test_a_runner_that_wakes_after_losing_its_lease_is_fenced(
    fault_server: FaultServer, postgres_url, tmp_path
):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    data = random.Random(6).randbytes(6 * MiB + 99)
    url = fault_server.add("/fleet/stopped.bin", data, rate_limit=1 * MiB)
    [job] = _add(tmp_path, postgres_url, out_dir, url)
    stale = _runner(tmp_path, "host-a", postgres_url)
    other: subprocess.Popen[str] | None = None
    group: set[int] = set()
    try:
        wait_for(lambda: _recorded(postgres_url, job)[0] >= 1 * MiB or stale.poll() is not None, 60)
        group = {p.pid for p in descendants(stale.pid)} | {stale.pid}
        os.killpg(stale.pid, signal.SIGSTOP)  # the host freezes: no beats, no writes
        other = _runner(tmp_path, "host-b", postgres_url, "--once")

        def taken_over() -> bool:
            with open_queue(postgres_url) as q:
                return any(e.message.startswith("taken over") for e in q.events(job))

        wait_for(taken_over, 60)
        os.killpg(stale.pid, signal.SIGCONT)  # it wakes while the new holder downloads
        out, err = other.communicate(timeout=120)
        assert other.returncode == 0, out[-2000:] + err
        stale.send_signal(signal.SIGTERM)
        stale_out, stale_err = stale.communicate(timeout=30)
    finally:
        for proc in (stale, other):
            if proc is not None and proc.poll() is None:
                kill_group_and_wait(proc.pid, group)
                proc.wait(10)
    assert _file_sha(str(out_dir / "stopped.bin")) == _sha(data)
    assert f'"id": {job}, "state": "lost"' in stale_out, stale_out[-3000:]
    with open_queue(postgres_url) as q:
        assert q.get(job).state == "done"
    assert len(_done_events(postgres_url, job)) == 1


def _next_state(runner: subprocess.Popen[str], job: int, state: str) -> None:
    """Read the runner's JSON lines until it says the job reached `state`."""
    assert runner.stdout is not None
    for line in runner.stdout:
        event = json.loads(line)
        if event.get("event") == "state" and event.get("id") == job and event.get("state") == state:
            return
    raise AssertionError(f"the runner ended before job {job} was {state}")


def test_steering_from_another_host_reaches_the_runner_holding_the_job(
    fault_server: FaultServer, postgres_url, tmp_path
):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    url = fault_server.add("/fleet/steered.bin", random.Random(7).randbytes(4 * MiB), rate_limit=256 * 1024)
    [job] = _add(tmp_path, postgres_url, out_dir, url)
    runner = _runner(tmp_path, "host-a", postgres_url)
    viewer = str(tmp_path / "viewer")
    try:
        _next_state(runner, job, "active")
        assert cli(viewer, "pause", str(job), "--queue", postgres_url).returncode == 0
        _next_state(runner, job, "paused")
        assert cli(viewer, "resume", str(job), "--queue", postgres_url).returncode == 0
        _next_state(runner, job, "active")
        assert cli(viewer, "rm", str(job), "--queue", postgres_url).returncode == 0
        _next_state(runner, job, "removed")  # handed to the runner holding it, which stopped and removed it
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.communicate(timeout=30)
    with open_queue(postgres_url) as q:
        assert q.ids() == set()
    assert os.listdir(out_dir) == []
