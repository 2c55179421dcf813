"""(h) A queue of a million: what the queue's length costs the commands, the app and the runner.

For each getm-tui binary (this one, and the --baseline one when given), one repetition is:

- `add -i` of `jobs` URLs into a fresh queue: wall time, the largest process's peak RSS (GNU time) and
  the tree's sampled PSS. The URLs are never fetched (nothing is served for them): the queue is only filled.
- `ls`, `ls --json` and, when the binary has one, the JSON-lines form: the time to the first line read
  from a pipe, and (another run) the time to write the whole list to a file, with its peak RSS.
- `RUNNING` jobs of the big file from nginx's `/trickle/` (1 MiB/s per connection, one connection each,
  a higher priority, so they stay active for the whole case and nothing else starts) are added to this
  queue and to a second one of `SMALL_QUEUE` jobs. On each queue in turn:
  - the app, through `app_probe` (app_responsiveness.first_rows: the app in tmux): the time until its
    first rows are on the screen, and its process's peak RSS and PSS;
  - `getm-tui run` (headless) once the running jobs are active: the peak RSS of the supervisor and of
    the largest job host over a short window, then SIGTERM to the runner we started.

The two queues give the memory's growth from 1,000 to `jobs` queued. Everything runs from the harness's
own processes and is ended by pid.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib.measure import alive, descendants, name_of, pss_kib, rss_kib, run_measured

SMALL_QUEUE = 1000  # the queue length the memory is compared against
RUNNING = 4  # jobs kept active while the runner's memory is sampled
READY_TIMEOUT = 120.0  # seconds for the running jobs to become active
JSONL_FLAGS = ("--jsonl", "--json-lines", "--ndjson")  # the streaming form, under whichever name it has
QUEUED_DIR = "queued"  # URLs under it are not served: a job that ran would fail at once
ROW_NAME = re.compile(r"\b(?:q\d{7}|run-\d+)\.bin")  # a job of this case on the app's screen

Log = Callable[[str], None]
AppProbe = Callable[[str, dict[str, str]], dict[str, Any]]


@dataclass
class ScaleSetup:
    """What every repetition of (h) shares: the URL lists, where queues live, the running jobs' URL."""

    jobs: int
    big_list: Path
    small_list: Path
    running_url: str
    work: Path  # queues, outputs and the listings are made (and removed) under it
    env: dict[str, str]
    timeout: float
    sample: float  # seconds of memory sampling per window
    log: Log


def write_queue_list(path: Path, count: int, url: Callable[[str], str]) -> Path:
    """`count` distinct URLs, one per line (their names are q0000000.bin...), written in blocks."""
    with open(path, "w") as f:
        block = 10_000
        for start in range(0, count, block):
            stop = min(count, start + block)
            f.write("".join(url(f"{QUEUED_DIR}/q{i:07d}.bin") + "\n" for i in range(start, stop)))
    return path


def db_path(data_dir: str) -> str:
    return os.path.join(data_dir, "queue.sqlite3")


def active_count(db: str) -> int:
    """Jobs the queue shows as active (read straight from SQLite, as a second reader would)."""
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return int(conn.execute("SELECT count(*) FROM jobs WHERE state = 'active'").fetchone()[0])


@dataclass
class Stream:
    """One command's output read from a pipe: when its first line came, when it ended, how many lines."""

    first_s: float | None
    total_s: float
    lines: int
    returncode: int


def stream_timing(argv: list[str], env: dict[str, str], timeout: float) -> Stream:
    """Time to the first line of `argv`'s output and to its end, reading as fast as a pipe allows. The
    command runs in a process group of its own, killed whole if it overruns."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    timer = threading.Timer(timeout, lambda: _kill_group(proc.pid))
    timer.daemon = True
    timer.start()
    assert proc.stdout is not None
    try:
        first = proc.stdout.readline()
        first_s = time.perf_counter() - start if first else None
        lines = 1 if first else 0
        while block := proc.stdout.read(1 << 20):
            lines += block.count(b"\n")
        returncode = proc.wait()
    finally:
        timer.cancel()
        proc.stdout.close()
    return Stream(first_s, time.perf_counter() - start, lines, returncode)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def count_lines(path: Path) -> int:
    lines = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
    return lines


def listing_variants(ls_flags: frozenset[str]) -> list[tuple[str, list[str]]]:
    """(figure key, extra arguments) of every listing to time: ls, ls --json, and the JSON-lines form
    when the binary's `ls --help` has one."""
    variants = [("ls", []), ("ls_json", ["--json"])]
    jsonl = next((f for f in JSONL_FLAGS if f in ls_flags), None)
    if jsonl:
        variants.append(("ls_jsonl", [jsonl]))
    return variants


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


class Failed(Exception):
    """A step of the case did not work; the repetition is recorded with the reason."""


def measure_binary(
    binary: str, s: ScaleSetup, ls_flags: frozenset[str], app_probe: AppProbe | None
) -> dict[str, Any]:
    """One repetition of (h) with one getm-tui binary: the figures, or what failed."""
    root = Path(tempfile.mkdtemp(prefix="h-", dir=s.work))
    figures: dict[str, Any] = {"at": round(time.time(), 1)}
    try:
        big = _fill(binary, s, root / "big", s.big_list, figures)
        figures.update(_listings(binary, s, root, big, ls_flags))
        small = _fill(binary, s, root / "small", s.small_list, None)
        for which, env in (("small", small), ("big", big)):
            if app_probe is not None:
                app = app_probe(binary, env)
                if "error" in app:
                    raise Failed(f"the app with the {which} queue: {app['error']}")
                for k in ("first_rows_s", "rss_mib", "pss_mib"):
                    figures[f"app_{k}_{which}"] = app.get(k)
            figures.update({f"{k}_{which}": v for k, v in runner_memory(binary, env, s).items()})
        figures["ok"] = True
    except Failed as e:
        figures.update(ok=False, error=str(e))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return figures


def _fill(
    binary: str, s: ScaleSetup, where: Path, url_list: Path, figures: dict[str, Any] | None
) -> dict[str, str]:
    """A fresh queue of the list's jobs plus the running ones; the add is measured into `figures` when
    given. Returns the environment that points getm-tui at this queue."""
    (where / "out").mkdir(parents=True)
    env = {**s.env, "GETM_TUI_DATA_DIR": str(where / "data"), "GETM_TUI_MAX_ACTIVE": str(RUNNING)}
    argv = [binary, "add", "-i", str(url_list), "-d", str(where / "out")]
    if figures is None:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=s.timeout)
        if done.returncode != 0:
            raise Failed(f"add -i: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    else:
        m = run_measured(argv, where / "scratch", env, timeout=s.timeout, sample_tree=True)
        if m.returncode != 0:
            raise Failed(f"add -i: exit {m.returncode}: {m.stderr_tail[-300:]}")
        figures.update(
            add_s=round(m.wall, 3), add_rss_mib=_mib(m.max_rss_kib), add_pss_mib=_mib(m.tree_pss_kib)
        )
    for i in range(RUNNING):
        one = [binary, "add", "--priority", "1", "-c", "1", "-d", str(where / "out"), "-o", f"run-{i}.bin"]
        done = subprocess.run([*one, s.running_url], env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise Failed(f"add of a running job: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    return env


def _listings(
    binary: str, s: ScaleSetup, root: Path, env: dict[str, str], ls_flags: frozenset[str]
) -> dict[str, Any]:
    """Each listing twice: from a pipe (first line, and the whole stream) and into a file (the command's
    own time and memory). A listing shorter than the queue fails the repetition."""
    figures: dict[str, Any] = {}
    for key, extra in listing_variants(ls_flags):
        argv = [binary, "ls", *extra]
        piped = stream_timing(argv, env, s.timeout)
        if piped.returncode != 0:
            raise Failed(f"{' '.join(['ls', *extra])}: exit {piped.returncode}")
        listing = root / f"{key}.out"
        m = run_measured(argv, root / "scratch", env, timeout=s.timeout, stdout_to=listing)
        lines = count_lines(listing)
        listing.unlink()
        if m.returncode != 0:
            raise Failed(f"{' '.join(['ls', *extra])} > file: exit {m.returncode}: {m.stderr_tail[-300:]}")
        if key != "ls_json" and lines < s.jobs:  # the JSON array may be one line
            raise Failed(f"{' '.join(['ls', *extra])}: {lines} lines for {s.jobs} jobs")
        figures.update(
            {
                f"{key}_first_s": None if piped.first_s is None else round(piped.first_s, 4),
                f"{key}_pipe_s": round(piped.total_s, 3),
                f"{key}_file_s": round(m.wall, 3),
                f"{key}_rss_mib": _mib(m.max_rss_kib),
            }
        )
    return figures


def runner_memory(binary: str, env: dict[str, str], s: ScaleSetup) -> dict[str, float]:
    """`getm-tui run` on the queue until the running jobs are active, then the peak RSS of its supervisor
    and of its largest job host over `s.sample` seconds; then SIGTERM, as a service manager stops it."""
    db = db_path(env["GETM_TUI_DATA_DIR"])
    proc = subprocess.Popen(
        [binary, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    tree: set[int] = set()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while active_count(db) < RUNNING:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Failed(f"run: {RUNNING} jobs did not become active (exit {proc.poll()})")
            time.sleep(0.1)
        time.sleep(1.0)  # the hosts' sessions and pools are set up
        peak = {"supervisor_rss_mib": 0, "supervisor_pss_mib": 0, "host_rss_mib": 0}
        end = time.monotonic() + s.sample
        while time.monotonic() < end:
            pids = descendants(proc.pid)
            tree.update(pids)
            names = {p: name_of(p) for p in pids}
            sup = [p for p, n in names.items() if n == "getm-supervisor"]
            hosts = [p for p, n in names.items() if n.startswith("getm-host-")]
            peak["supervisor_rss_mib"] = max(peak["supervisor_rss_mib"], sum(rss_kib(p) for p in sup))
            peak["supervisor_pss_mib"] = max(peak["supervisor_pss_mib"], sum(pss_kib(p) for p in sup))
            peak["host_rss_mib"] = max(peak["host_rss_mib"], max((rss_kib(p) for p in hosts), default=0))
            time.sleep(0.1)
        if not peak["supervisor_rss_mib"]:
            raise Failed("run: no getm-supervisor process found under the runner")
        return {k: round(v / 1024, 1) for k, v in peak.items()}
    finally:
        stop_runner(proc, tree)


def stop_runner(proc: subprocess.Popen[bytes], tree: set[int]) -> None:
    """SIGTERM to the runner we started; whatever of its tree is still there 15 s later is killed by pid."""
    tree |= set(descendants(proc.pid))
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
    deadline = time.monotonic() + 15
    while any(alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in tree:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if proc.stderr is not None:
        proc.stderr.close()


def measure(
    binaries: list[tuple[str, str]],
    s: ScaleSetup,
    repeat: int,
    flags_of: Callable[[str], frozenset[str]],
    app_probe: AppProbe | None,
    into: dict[str, Any],
) -> None:
    """Case (h): `repeat` repetitions, the binaries alternated (the order rotated every repetition).
    `binaries` are (label, path); the record is `into["queue_scale"]`, filled as repetitions finish (so
    an interrupted run keeps what was done)."""
    record: dict[str, Any] = {
        "key": "h",
        "jobs": s.jobs,
        "small_jobs": SMALL_QUEUE,
        "running": RUNNING,
        "sample_s": s.sample,
        "app_measured": app_probe is not None,
        "tools": [],
    }
    into["queue_scale"] = record
    slots: list[tuple[dict[str, Any], str, frozenset[str]]] = []
    for label, path in binaries:
        flags = flags_of(path)
        variants = [k for k, _ in listing_variants(flags)]
        slot: dict[str, Any] = {"label": label, "binary": path, "ls_variants": variants, "runs": []}
        record["tools"].append(slot)
        slots.append((slot, path, flags))
    s.log(f"\n== (h) a queue of {s.jobs:,} jobs: {len(binaries)} getm-tui x {repeat}")
    for rep in range(repeat):
        k = rep % len(slots)
        for slot, path, flags in [*slots[k:], *slots[:k]]:
            started = time.perf_counter()
            figures = measure_binary(path, s, flags, app_probe)
            figures["rep"] = rep
            slot["runs"].append(figures)
            status = "ok" if figures["ok"] else f"FAILED: {figures['error']}"
            s.log(f"  r{rep} {slot['label']:<44} {time.perf_counter() - started:8.1f} s  {status}")
