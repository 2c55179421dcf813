"""(i) A fleet on one PostgreSQL: what one server sustains, and what more runners buy.

- Claims per second: `CLAIMERS` processes, each a runner of the fleet (join_fleet), take the jobs of a
  queue of `claim_jobs` one at a time (claim_runnable(1), as a runner with one free slot does) until it is
  empty; the jobs over the wall time from the first claim to the last.
- Progress writes per second: `WRITERS` processes, each holding `HELD` jobs, save resume records (eight
  parts, the shape a running download writes) round-robin for `seconds`, each write fenced by its lease
  as a runner's is; all the writes over the time.
- Draining: the (g) files (10,000 small ones; `--quick`: 500) queued with `add -i`, then 1, 2 and 4
  `getm-tui run --once` runners, each with a data dir of its own (standing in for hosts), started at once
  on a fresh database; the wall time until the last runner exits, checked (every job done, every file
  there with its size).

The server is the distribution's PostgreSQL, run unprivileged in a temporary directory by the tests'
own helper (tests/helpers/postgres.py), with fsync off as in the tests: it measures the queue's work,
not the disk's. Everything runs from the harness's own processes and is ended by pid.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CLAIMERS = 4
WRITERS = 4
HELD = 8
RUNNERS = (1, 2, 4)
Log = Callable[[str], None]


def _server() -> Any:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.helpers.postgres import PostgresServer

    return PostgresServer().init().start()


def _claimer(url: str, start: Any, counts: Any, i: int) -> None:
    from getm_tui.queue.interface import open_queue

    with open_queue(url) as q:
        q.join_fleet(f"/bench/claimer-{i}", 600.0)
        start.wait()  # every claimer has connected and joined: the clock starts with the claims
        n = 0
        while q.claim_runnable(1):
            n += 1
        counts[i] = n


def claims_per_second(url: str, jobs: int) -> dict[str, Any]:
    from getm_tui.queue.interface import open_queue

    with open_queue(url) as q:
        q.add_many({"url": f"https://example.org/c{n}.bin", "directory": "/tmp"} for n in range(jobs))
    fork = multiprocessing.get_context("fork")
    start, counts = fork.Barrier(CLAIMERS + 1), fork.Array("l", CLAIMERS)
    procs = [fork.Process(target=_claimer, args=(url, start, counts, i)) for i in range(CLAIMERS)]
    for p in procs:
        p.start()
    start.wait()
    began = time.perf_counter()
    for p in procs:
        p.join()
    wall = time.perf_counter() - began
    claimed = sum(counts)
    return {
        "jobs": jobs,
        "claimers": CLAIMERS,
        "claimed": claimed,
        "seconds": wall,
        "per_second": claimed / wall,
    }


def _writer(url: str, start: Any, counts: Any, i: int, seconds: float) -> None:
    from getm_tui.queue.interface import open_queue

    with open_queue(url) as q:
        q.join_fleet(f"/bench/writer-{i}", 600.0)
        ids = q.add_many(
            {"url": f"https://example.org/w{i}-{n}.bin", "directory": "/tmp"} for n in range(HELD)
        )
        for job_id in ids:
            q.claim(job_id)
        start.wait()
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            parts = [[k << 24, (k + 1) << 24, (n * 4096 + k) % (1 << 24), 12345] for k in range(8)]
            q.save_resume(ids[n % HELD], {"version": 1, "url": "x", "size": 8 << 24, "parts": parts})
            n += 1
        counts[i] = n


def writes_per_second(url: str, seconds: float) -> dict[str, Any]:
    fork = multiprocessing.get_context("fork")
    start, counts = fork.Barrier(WRITERS + 1), fork.Array("l", WRITERS)
    procs = [fork.Process(target=_writer, args=(url, start, counts, i, seconds)) for i in range(WRITERS)]
    for p in procs:
        p.start()
    start.wait()
    for p in procs:
        p.join()
    writes = sum(counts)
    return {"writers": WRITERS, "seconds": seconds, "writes": writes, "per_second": writes / seconds}


def drain(
    url: str,
    binary: str,
    env: dict[str, str],
    urls: list[str],
    sizes: dict[str, int],
    work: Path,
    runners: int,
    timeout: float,
) -> dict[str, Any]:
    """`runners` runners drain the queue of `urls` into a fresh directory; the wall time and the check."""
    out = work / f"drain-{runners}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    fleet_env = {**env, "GETM_TUI_QUEUE": url}
    listing = work / "drain-urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    add = subprocess.run(
        [binary, "add", "-d", str(out), "-i", str(listing)],
        env={**fleet_env, "GETM_TUI_DATA_DIR": str(work / "adder")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if add.returncode != 0:
        raise RuntimeError(f"add failed: {add.stderr[-500:]}")
    began = time.perf_counter()
    procs = [
        subprocess.Popen(
            [binary, "run", "--once"],
            env={**fleet_env, "GETM_TUI_DATA_DIR": str(work / f"runner-{r}")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for r in range(runners)
    ]
    codes, errors = [], []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        codes.append(p.returncode)
        if p.returncode:
            errors.append(err[-500:])
    wall = time.perf_counter() - began
    missing = [name for name, size in sizes.items() if not _has(out / name, size)]
    shutil.rmtree(out, ignore_errors=True)
    return {
        "runners": runners, "files": len(urls), "seconds": wall, "files_per_second": len(urls) / wall,
        "exit_codes": codes, "errors": errors, "missing": len(missing),
        "ok": not missing and codes == [0] * runners,
    }  # fmt: skip


def _has(path: Path, size: int) -> bool:
    try:
        return os.path.getsize(path) == size
    except OSError:
        return False


def measure(
    binary: str,
    env: dict[str, str],
    many: list[tuple[str, str, int]],
    work: Path,
    quick: bool,
    timeout: float,
    log: Log,
    results: dict[str, Any],
) -> None:
    """All of (i) into results["fleet"]; `many` holds the (g) files as (URL, name, size)."""
    server = _server()
    fleet: dict[str, Any] = results.setdefault("fleet", {})
    try:
        log(f"(i) PostgreSQL {server.bin} on 127.0.0.1:{server.port}")
        fleet["claims"] = claims_per_second(server.create_database("claims"), 2000 if quick else 20_000)
        log(f"(i) claims: {fleet['claims']['per_second']:.0f}/s with {CLAIMERS} runners")
        fleet["progress_writes"] = writes_per_second(server.create_database("writes"), 2.0 if quick else 10.0)
        log(f"(i) progress writes: {fleet['progress_writes']['per_second']:.0f}/s with {WRITERS} writers")
        urls = [u for u, _n, _s in many]
        sizes = {name: size for _u, name, size in many}
        fleet["drain"] = []
        for runners in RUNNERS:
            url = server.create_database(f"drain_{runners}")
            done = drain(url, binary, env, urls, sizes, work / "fleet", runners, timeout)
            fleet["drain"].append(done)
            log(f"(i) {runners} runner(s): {len(urls)} files in {done['seconds']:.1f} s (ok: {done['ok']})")
    finally:
        server.remove()


def table(fleet: dict[str, Any]) -> str:
    """(i)'s part of the report."""
    lines = ["(i) a fleet on one PostgreSQL"]
    if "claims" in fleet:
        c = fleet["claims"]
        lines.append(
            f"  claims:          {c['per_second']:8.0f}/s  ({c['claimed']} by {c['claimers']} runners)"
        )
    if "progress_writes" in fleet:
        w = fleet["progress_writes"]
        lines.append(
            f"  progress writes: {w['per_second']:8.0f}/s  ({w['writes']} by {w['writers']} writers)"
        )
    for d in fleet.get("drain", []):
        state = "ok" if d["ok"] else f"FAILED (exit {d['exit_codes']}, {d['missing']} files missing)"
        lines.append(
            f"  {d['runners']} runner(s): {d['files']} files in {d['seconds']:7.1f} s"
            f"  {d['files_per_second']:7.1f} files/s  {state}"
        )
    return "\n".join(lines)
