"""Soak: thousands of small jobs through one runner while the server misbehaves on a share of requests.

    python benchmarks/soak.py                       # 10,000 jobs, faults on 5% of requests
    python benchmarks/soak.py --jobs 300 --json     # the scaled-down run the test suite makes

What it does, as a user would: starts the loopback fault server (tests/faultserver.py, so it needs the
`test` extra) with random faults on `--fault-rate` of all GET requests (drops, resets, short bodies,
stalls past the read timeout, garbage after bodies, flipped bytes, wrong Content-Range, a range answered
with 200, 503 / 429 with Retry-After, 500), writes one `URL md5:HEX` line per job, runs
`getm-tui add -i` and then `getm-tui run --once --json`, and samples the memory of the runner's process
tree (the front end, the supervisor, its job hosts, their fork servers and fetch workers) from /proc while
it runs. Jobs that end failed (a flipped byte is caught by the md5 and fails the job, as it must) are
retried with `getm-tui retry` and another `run --once`, up to `--passes` runs in all.

Then it checks: every job done and verified, every file's md5 recomputed from disk, nothing else in the
output directory (no `*.getm-part`, `*.getm-resume` or other temporary file), nothing of ours left in
/dev/shm, no process of the runner's tree still alive, and whether memory stayed flat. It prints a
report (and with --json one JSON object on the last line) and exits 0 only if every check passed.

"Flat" compares the supervisor's RSS, and the largest job host's, once 20-30% of the jobs are done
(warmed up: pools, sessions, caches) with its RSS over the last 10%: growth above max(8 MiB, 10%) is not
flat, and so is (when the second half spans 2,000 jobs or more) a slope above 1 MiB per 1,000 jobs over
the second half. RSS is
summed per process (shared pages counted in each); PSS, which splits them, is reported beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

from benchlib.measure import alive, descendants, name_of, pss_kib, rss_kib  # noqa: E402

from tests.helpers.faultserver import FaultServer, RandomFaults  # noqa: E402

MiB = 1024 * 1024
KiB = 1024
SHM = "/dev/shm"
TEMP_SUFFIXES = (".getm-part", ".getm-resume", ".tmp")


@dataclass
class Sample:
    at: float
    done: int  # jobs finished (done or failed) in this pass so far
    supervisor_rss: int  # KiB
    host_rss: int  # KiB, the largest job host's (a host's jobs, sessions and fetch workers' pools live there)
    tree_rss: int  # KiB, summed over the runner's processes
    tree_pss: int  # KiB
    processes: int


@dataclass
class Pass:
    number: int
    jobs: int
    seconds: float
    done: int
    failed: int
    errors: dict[str, int]
    samples: list[Sample] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)
    exit_code: int = 0


def shm_ours() -> set[str]:
    """Entries of /dev/shm our code could have made: its blocks are `getm-<pid>-...` (unlinked at once)."""
    return {n for n in os.listdir(SHM) if n.startswith("getm-")}


def shm_used() -> int:
    usage = shutil.disk_usage(SHM)
    return usage.used


def make_data(
    n: int, seed: int, small: tuple[int, int], large_every: int, large: tuple[int, int]
) -> list[bytes]:
    """Random bodies; every `large_every`-th job is large enough for parts and fetch workers."""
    rng = random.Random(seed)
    pool = rng.randbytes(8 * MiB)
    out = []
    for i in range(n):
        lo, hi = large if large_every and i % large_every == large_every - 1 else small
        size = rng.randint(lo, hi)
        if size <= len(pool):
            start = rng.randrange(0, len(pool) - size + 1)
            body = pool[start : start + size]
        else:
            body = rng.randbytes(size)
        out.append(body)
    return out


def getm(work: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "getm_tui", *args], capture_output=True, text=True, env=env, timeout=3600
    )


def run_pass(number: int, jobs: int, env: dict[str, str], every: float, log: Any) -> Pass:
    """One `run --once --json`, sampling its process tree until it exits."""
    started = time.monotonic()
    runner = subprocess.Popen(
        [sys.executable, "-m", "getm_tui", "run", "--once", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    result = Pass(number, jobs, 0.0, 0, 0, {})
    state = {"finished": 0, "supervisor": 0, "end": False}
    stderr_lines: list[str] = []

    def read_stdout() -> None:
        assert runner.stdout is not None
        for line in runner.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "start":
                state["supervisor"] = int(event["pid"])
            elif kind == "state" and event.get("state") in ("done", "failed"):
                state["finished"] += 1
                if event["state"] == "failed":
                    key = " ".join((event.get("message") or "?").split()[:2])  # "checksum mismatch"
                    result.errors[key] = result.errors.get(key, 0) + 1
            elif kind == "finished":
                state["end"] = True
                result.done, result.failed = int(event["done"]), int(event["failed"])

    def read_stderr() -> None:
        assert runner.stderr is not None
        stderr_lines.extend(runner.stderr)

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
    for t in readers:
        t.start()
    last_note = 0.0
    try:
        while runner.poll() is None:
            pids = [runner.pid, *descendants(runner.pid)]
            result.pids.update(pids)
            sup = state["supervisor"]
            if sup and not state["end"]:
                hosts = [p for p in pids if name_of(p).startswith("getm-host-")]
                result.samples.append(
                    Sample(
                        time.monotonic() - started,
                        state["finished"],
                        rss_kib(sup),
                        max((rss_kib(p) for p in hosts), default=0),
                        sum(rss_kib(p) for p in pids),
                        sum(pss_kib(p) for p in pids),
                        len(pids),
                    )
                )
            now = time.monotonic()
            if now - last_note >= 10:
                last_note = now
                s = result.samples[-1] if result.samples else None
                rss = f", supervisor {s.supervisor_rss / 1024:.1f} MiB" if s else ""
                print(
                    f"  pass {number}: {state['finished']}/{jobs} jobs, {now - started:.0f}s{rss}", file=log
                )
            time.sleep(every)
    except KeyboardInterrupt:
        os.killpg(runner.pid, signal.SIGTERM)
        raise
    for t in readers:
        t.join(10)
    result.seconds = time.monotonic() - started
    result.exit_code = runner.returncode
    if runner.returncode not in (0, 1):
        print("".join(stderr_lines[-20:]), file=log)
    return result


def flatness(samples: list[Sample], jobs: int, rss: Callable[[Sample], int]) -> dict[str, Any]:
    """One process's RSS (`rss` of each sample) once warmed up (20-30% of the jobs done) against the last
    10%, and the slope."""
    # A zero is a moment with no such process (job hosts come and go with their hosts' work), not a size.
    samples = [s for s in samples if rss(s) > 0]
    if len(samples) < 6 or jobs < 10:
        return {"flat": None, "why": "too few samples"}

    def window(lo: float, hi: float) -> list[int]:
        picked = [rss(s) for s in samples if lo * jobs <= s.done <= hi * jobs]
        if picked:
            return picked
        # A short run may have no sample inside the window: take the one nearest to it.
        middle = (lo + hi) / 2 * jobs
        return [rss(min(samples, key=lambda s: abs(s.done - middle)))]

    warm = statistics.median(window(0.2, 0.3))
    late = statistics.median(window(0.9, 1.0))
    growth = late - warm
    second_half = [s for s in samples if s.done >= jobs / 2]
    slope = 0.0
    if len(second_half) >= 3 and second_half[-1].done > second_half[0].done:
        xs = [s.done for s in second_half]
        ys = [rss(s) for s in second_half]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    slope_per_1000 = slope * 1000  # KiB per 1,000 jobs
    # The slope says something only over thousands of jobs; on a short run noise dominates it.
    spans = bool(second_half) and second_half[-1].done - second_half[0].done >= 2000
    flat = growth <= max(8 * 1024, 0.10 * warm) and (not spans or slope_per_1000 <= 1024)
    return {
        "flat": flat,
        "warm_kib": int(warm),
        "late_kib": int(late),
        "growth_kib": int(growth),
        "slope_kib_per_1000_jobs": round(slope_per_1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--fault-rate", type=float, default=0.05, help="share of GET requests given a fault")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-size", type=int, default=1 * KiB)
    ap.add_argument("--max-size", type=int, default=64 * KiB)
    ap.add_argument(
        "--large-every", type=int, default=100, help="every Nth job is 1.5-3 MiB (parts, workers); 0: none"
    )
    ap.add_argument("--passes", type=int, default=3, help="runs in all: failed jobs are retried")
    ap.add_argument("--read-timeout", type=float, default=2.0, help="seconds (stalls cost this much)")
    ap.add_argument("--max-active", type=int, default=3)
    ap.add_argument("--sample-every", type=float, default=0.25, help="seconds between memory samples")
    ap.add_argument("--workdir", help="keep everything here (default: a temp dir, deleted)")
    ap.add_argument("--json", action="store_true", help="one JSON object on the last line")
    args = ap.parse_args(argv)
    log = sys.stderr if args.json else sys.stdout

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="getm-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    data_dir, out = work / "q", work / "out"
    out.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "GETM_TUI_CONFIG": "",
        "GETM_TUI_DATA_DIR": str(data_dir),
        "GETM_TUI_READ_TIMEOUT": str(args.read_timeout),
        "GETM_TUI_PART_SIZE": "1M",
        "GETM_TUI_MAX_ACTIVE": str(args.max_active),
    }
    t0 = time.monotonic()
    bodies = make_data(
        args.jobs, args.seed, (args.min_size, args.max_size), args.large_every, (3 * MiB // 2, 3 * MiB)
    )
    md5s = [hashlib.md5(b).hexdigest() for b in bodies]
    server = FaultServer(random_faults=RandomFaults(rate=args.fault_rate, seed=args.seed)).start()
    report: dict[str, Any] = {}
    try:
        lines = []
        for i, (body, md5) in enumerate(zip(bodies, md5s, strict=True)):
            url = server.add(f"/soak/{i:06d}.bin", body)
            lines.append(f"{url} md5:{md5}\n")
        (work / "urls.txt").write_text("".join(lines))
        del bodies
        shm_before, shm_used_before = shm_ours(), shm_used()
        print(f"soak: {args.jobs} jobs, faults on {args.fault_rate:.0%} of requests, in {work}", file=log)
        added_at = time.monotonic()
        added = getm(work, "add", "-i", str(work / "urls.txt"), "-d", str(out), env=env)
        if added.returncode != 0:
            raise SystemExit(f"add failed: {added.stderr}")
        ids = [int(x) for x in added.stdout.split()]
        add_seconds = time.monotonic() - added_at
        passes: list[Pass] = []
        todo = len(ids)
        for number in range(1, args.passes + 1):
            p = run_pass(number, todo, env, args.sample_every, log)
            passes.append(p)
            print(
                f"  pass {number}: {p.done} done, {p.failed} failed in {p.seconds:.1f}s (exit {p.exit_code})",
                file=log,
            )
            if not p.failed:
                break
            failed = json.loads(getm(work, "ls", "--json", "--state", "failed", env=env).stdout)
            retried = getm(work, "retry", *(str(j["id"]) for j in failed), env=env)
            if retried.returncode != 0:
                raise SystemExit(f"retry failed: {retried.stderr}")
            todo = len(failed)
        wall = time.monotonic() - added_at

        # -- checks ---------------------------------------------------------------------------------
        listed = json.loads(getm(work, "ls", "--json", env=env).stdout)
        by_id = {j["id"]: j for j in listed}
        wrong: list[str] = []
        verified = 0
        for i, job_id in enumerate(ids):
            job = by_id.get(job_id)
            name = f"{i:06d}.bin"
            if job is None or job["state"] != "done":
                wrong.append(f"{name}: {job and job['state']} {job and job['error']}")
                continue
            verified += job["verdict"] == "verified"
            path = out / name
            if job["path"] != str(path):
                wrong.append(f"{name}: saved as {job['path']}")
                continue
            with open(path, "rb") as f:
                if hashlib.md5(f.read()).hexdigest() != md5s[i]:
                    wrong.append(f"{name}: md5 differs")
        expected_names = {f"{i:06d}.bin" for i in range(len(ids))}
        present = set(os.listdir(out))
        leftovers = sorted(present - expected_names)
        leftovers += sorted(
            str(p.relative_to(work))
            for p in work.rglob("*")
            if p.is_file() and p.name.endswith(TEMP_SUFFIXES) and p.parent != out
        )
        shm_after, shm_used_after = shm_ours(), shm_used()
        left_pids = sorted(pid for p in passes for pid in p.pids if alive(pid))
        first = passes[0]
        samples = first.samples
        rss = {
            "supervisor_start_mib": round(samples[0].supervisor_rss / 1024, 1) if samples else None,
            "supervisor_peak_mib": round(max(s.supervisor_rss for s in samples) / 1024, 1)
            if samples
            else None,
            "supervisor_end_mib": round(samples[-1].supervisor_rss / 1024, 1) if samples else None,
            "host_start_mib": round(samples[0].host_rss / 1024, 1) if samples else None,
            "host_peak_mib": round(max(s.host_rss for s in samples) / 1024, 1) if samples else None,
            "host_end_mib": round(samples[-1].host_rss / 1024, 1) if samples else None,
            "tree_start_mib": round(samples[0].tree_rss / 1024, 1) if samples else None,
            "tree_peak_mib": round(max(s.tree_rss for s in samples) / 1024, 1) if samples else None,
            "tree_end_mib": round(samples[-1].tree_rss / 1024, 1) if samples else None,
            "tree_pss_peak_mib": round(max(s.tree_pss for s in samples) / 1024, 1) if samples else None,
            "processes_peak": max(s.processes for s in samples) if samples else None,
            "samples": len(samples),
        }
        flat = flatness(samples, first.jobs, lambda s: s.supervisor_rss)
        hosts_flat = flatness(samples, first.jobs, lambda s: s.host_rss)
        fired = server.random_fired
        gets = sum(server.resource(f"/soak/{i:06d}.bin").get_count for i in range(len(ids)))
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
            "command": "python benchmarks/soak.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "jobs": len(ids),
            "large_jobs": sum(
                1
                for i in range(len(ids))
                if args.large_every and i % args.large_every == args.large_every - 1
            ),
            "fault_rate": args.fault_rate,
            "get_requests": gets,
            "faults_injected": sum(fired.values()),
            "faults_by_kind": dict(sorted(fired.items())),
            "add_seconds": round(add_seconds, 2),
            "wall_seconds": round(wall, 1),
            "passes": [
                {
                    "pass": p.number,
                    "jobs": p.jobs,
                    "seconds": round(p.seconds, 1),
                    "done": p.done,
                    "failed": p.failed,
                    "errors": p.errors,
                    "exit": p.exit_code,
                }
                for p in passes
            ],  # fmt: skip
            "files_correct": len(ids) - len(wrong),
            "verified": verified,
            "wrong": wrong[:20],
            "rss": rss,
            "memory": flat,
            "memory_hosts": hosts_flat,
            "shm_left": sorted(shm_after - shm_before),
            "shm_used_delta_kib": (shm_used_after - shm_used_before) // 1024,
            "leftovers": leftovers[:20],
            "processes_left": left_pids,
            "server_errors": [repr(e) for e in server.errors][:5],
        }
        report["ok"] = bool(
            not wrong
            and verified == len(ids)
            and not leftovers
            and not report["shm_left"]
            and not left_pids
            and not report["server_errors"]
            and flat.get("flat") is not False
            and hosts_flat.get("flat") is not False
            and report["faults_injected"] > 0
        )
        print_report(report, log)
    finally:
        server.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"soak: total {time.monotonic() - t0:.0f}s including data generation", file=log)
    if args.json:
        print(json.dumps(report))
    return 0 if report.get("ok") else 1


def print_report(r: dict[str, Any], out: Any) -> None:
    rss, mem, hmem = r["rss"], r["memory"], r["memory_hosts"]
    lines = [
        f"date: {r['date']}; machine: {r['machine']}",
        f"command: {r['command']}",
        f"jobs: {r['jobs']} ({r['large_jobs']} of 1.5-3 MiB in parts); GET requests: {r['get_requests']}; "
        f"faults injected: {r['faults_injected']} ({r['faults_injected'] / max(1, r['get_requests']):.1%})",
        "faults by kind: " + ", ".join(f"{k} {v}" for k, v in r["faults_by_kind"].items()),
        f"add -i: {r['add_seconds']} s; wall (add to last run's end): {r['wall_seconds']} s",
    ]
    for p in r["passes"]:
        errors = "; ".join(f"{k} x{v}" for k, v in p["errors"].items())
        lines.append(
            f"  run {p['pass']}: {p['jobs']} jobs in {p['seconds']} s: {p['done']} done, {p['failed']} failed"
            + (f" ({errors})" if errors else "")
        )
    lines += [
        f"files correct (md5 from disk): {r['files_correct']}/{r['jobs']}; "
        f"verified by the runner: {r['verified']}",
        f"supervisor RSS: start {rss['supervisor_start_mib']} MiB, peak {rss['supervisor_peak_mib']} MiB, "
        f"end {rss['supervisor_end_mib']} MiB",
        f"largest job host RSS: start {rss['host_start_mib']} MiB, peak {rss['host_peak_mib']} MiB, "
        f"end {rss['host_end_mib']} MiB",
        "runner tree RSS (front end, supervisor, job hosts, fork servers, workers): "
        f"start {rss['tree_start_mib']} MiB, "
        f"peak {rss['tree_peak_mib']} MiB, end {rss['tree_end_mib']} MiB; "
        f"peak PSS {rss['tree_pss_peak_mib']} MiB; "
        f"{rss['processes_peak']} processes at most; {rss['samples']} samples",
        *(
            f"memory flat, {who}: {m.get('flat')} (warm {m.get('warm_kib', 0) / 1024:.1f} MiB -> last 10% "
            f"{m.get('late_kib', 0) / 1024:.1f} MiB, "
            f"slope {m.get('slope_kib_per_1000_jobs')} KiB per 1,000 jobs)"
            for who, m in (("supervisor", mem), ("largest job host", hmem))
        ),
        f"/dev/shm: {len(r['shm_left'])} entries of ours left; used changed by {r['shm_used_delta_kib']} KiB "
        "(other users of the machine included)",
        f"leftover files: {r['leftovers'] or 'none'}; processes left: {r['processes_left'] or 'none'}",
        f"result: {'OK' if r['ok'] else 'FAILED'}",
    ]
    if r["wrong"]:
        lines.append("wrong: " + "; ".join(r["wrong"]))
    print("\n".join(lines), file=out)


if __name__ == "__main__":
    raise SystemExit(main())
