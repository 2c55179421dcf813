"""(j) The app's CPU while its runner drains a queue of small files.

    python benchmarks/app_responsiveness.py --small-files 20000 [--sample 5] [--windows 3] [--profile DIR]
    python benchmarks/run.py --cases j [--app-files N]

Issue 16 asks that the app "stays under 15% of a core while 300 small jobs a second finish". With big
files (case f) a row changes state once a minute; with small ones a row leaves `queued`, becomes `active`
and `done` several hundred times a second, the counts change with each, and the window of rows on screen
is read again at every commit. That is what this case loads the app with.

N files of 64 KiB (the harness's random bytes, served by its private nginx) are queued with `getm-tui add
-i LIST -d OUT`, as a user queues them; then the app is started in a private tmux (as in f) with the
defaults a new user has (no config, no GETM_TUI_* variable: max_active and the rest as shipped), and the
supervisor it starts drains the queue. Once jobs are finishing, consecutive windows sample the app
process's CPU (utime + stime from /proc; its supervisor and job hosts are other processes, shown for
context) and count the jobs the queue records done in the same window, so each figure says at what rate
it was taken. A window the drain ended within is reported and left out of the medians. Then `q`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib.data import DataFile, write_small_files
from benchlib.measure import alive, descendants, name_of
from benchlib.terminal import (
    SIZE,
    Log,
    Tmux,
    cpu_seconds,
    poll_until,
    py_spy,
    quit_app,
    schedstat,
    start_app,
    tmux_env,
    tree_cpu_seconds,
)

TITLE = "the app's CPU while small jobs finish"
FILES = 20_000
QUICK_FILES = 8_000
FILE_SIZE = 64 * 1024
FOLDER = "drain"
TARGET_CPU_PCT = 15.0
TARGET_RATE = 300.0  # jobs/s: the target is judged only on windows taken at least this fast
WINDOWS = 3
SAMPLE = 5.0
WARM_SHARE = 20  # sampling starts once 1/20 of the files are done (the app and the hosts have started)
ROW_NAME = re.compile(r"f\d{5,}\.bin")
SUPERVISOR = "getm-supervisor"


def write_files(root: Path, count: int, log: Log) -> tuple[DataFile, ...]:
    """The small files the queue's jobs fetch, under the server's root (as (c) and (g) write theirs)."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # nginx's workers run as nobody
    log(f"writing {count:,} x {FILE_SIZE >> 10} KiB of random bytes for case (j)")
    return write_small_files(root, FOLDER, count, FILE_SIZE)


@dataclass
class Drain:
    """One run of the case: where its queue and files are, and how it measures."""

    data_dir: str
    out: Path
    env: dict[str, str]
    getm_tui: str
    files: int
    sample: float
    windows: int
    log: Log
    profile_dir: Path | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def db_path(self) -> str:
        return os.path.join(self.data_dir, "queue.sqlite3")

    def say(self, message: str) -> None:
        self.log(f"  [{time.monotonic() - self.started:5.1f} s] {message}")


def states(db_path: str) -> dict[str, int]:
    """Jobs per state, read straight from SQLite (as a second reader would)."""
    with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())


def left(counts: dict[str, int]) -> int:
    return counts.get("queued", 0) + counts.get("active", 0)


def queue_files(d: Drain, urls: list[str]) -> None:
    """`getm-tui add -i LIST -d OUT`, as a user queues a list."""
    listing = Path(d.data_dir).parent / "urls.txt"
    listing.write_text("".join(u + "\n" for u in urls))
    done = subprocess.run(
        [d.getm_tui, "add", "-i", str(listing), "-d", str(d.out)],
        env={**d.env, "GETM_TUI_DATA_DIR": d.data_dir},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"add -i: exit {done.returncode}: {done.stderr.strip()[-500:]}")


def split_tree(app_pid: int) -> tuple[list[int], list[int]]:
    """The app's supervisor, and the rest of its children (job hosts, fetch workers)."""
    tree = descendants(app_pid)
    supervisor = [p for p in tree if name_of(p) == SUPERVISOR]
    return supervisor, [p for p in tree if p not in supervisor]


def window(d: Drain, app_pid: int) -> dict[str, Any]:
    """One sampling window: the app's CPU, its supervisor's and job hosts', the jobs done meanwhile."""
    supervisor, hosts = split_tree(app_pid)
    counts0 = states(d.db_path)
    sched0, cpu0 = schedstat(app_pid), cpu_seconds(app_pid)
    sup0, hosts0, t0 = tree_cpu_seconds(supervisor), tree_cpu_seconds(hosts), time.perf_counter()
    per_second = []
    last_cpu, last_t = cpu0, t0
    while (elapsed := time.perf_counter() - t0) < d.sample:
        time.sleep(min(1.0, d.sample - elapsed))
        now_cpu, now_t = cpu_seconds(app_pid), time.perf_counter()
        per_second.append(round(100 * (now_cpu - last_cpu) / (now_t - last_t), 1))
        last_cpu, last_t = now_cpu, now_t
    cpu1, sched1, t1 = cpu_seconds(app_pid), schedstat(app_pid), time.perf_counter()
    sup1, hosts1 = tree_cpu_seconds(supervisor), tree_cpu_seconds(hosts)
    counts1 = states(d.db_path)
    wall = t1 - t0
    finished = counts1.get("done", 0) - counts0.get("done", 0)
    return {
        "wall_s": round(wall, 3),
        "cpu_pct": round(100 * (cpu1 - cpu0) / wall, 2),
        "cpu_pct_per_second": per_second,
        "jobs_done": finished,
        "jobs_per_s": round(finished / wall, 1),
        "failed": counts1.get("failed", 0) - counts0.get("failed", 0),
        "supervisor_cpu_pct": round(100 * (sup1 - sup0) / wall, 1),
        "hosts_cpu_pct": round(100 * (hosts1 - hosts0) / wall, 1),
        "loop_on_cpu_pct": round((sched1[0] - sched0[0]) / 1e7 / wall, 1),
        "loop_waiting_pct": round((sched1[1] - sched0[1]) / 1e7 / wall, 1),
        "drained": left(counts1) == 0,  # the drain ended inside the window: not a window of the drain
        "active_end": counts1.get("active", 0),
    }


def run_app(d: Drain) -> dict[str, Any]:
    """The app in tmux on the queued files: windows of its CPU while its supervisor drains them."""
    tmux = Tmux(tmux_env({**d.env, "GETM_TUI_DATA_DIR": d.data_dir}))
    record: dict[str, Any] = {"tmux": tmux.version(), "size": f"{SIZE[0]}x{SIZE[1]}", "windows": []}
    app_pid = 0
    tree: list[int] = []
    try:
        app_pid, record["first_rows_s"] = start_app(tmux, d.getm_tui, ROW_NAME, 90)
        record["app_pid"] = app_pid
        warm = max(1, d.files // WARM_SHARE)
        d.say(f"app pid {app_pid} in tmux; waiting for {warm:,} jobs done")

        def warmed() -> bool:
            if not alive(app_pid):
                raise RuntimeError("the app exited:\n" + tmux.capture("app").strip()[-2000:])
            return states(d.db_path).get("done", 0) >= warm

        if not poll_until(warmed, 120, every=0.2)[0]:
            raise RuntimeError(f"{warm} jobs were not done in 120 s:\n{tmux.capture('app').strip()[-2000:]}")
        for n in range(d.windows):
            w = window(d, app_pid)
            record["windows"].append(w)
            d.say(
                f"window {n + 1}: app {w['cpu_pct']:.1f}% of a core at {w['jobs_per_s']:.0f} jobs/s "
                f"(supervisor {w['supervisor_cpu_pct']:.0f}%, job hosts {w['hosts_cpu_pct']:.0f}%)"
                + ("; the drain ended inside it" if w["drained"] else "")
            )
            if w["drained"]:
                break
        tree = descendants(app_pid)
        if d.profile_dir is not None and left(states(d.db_path)):
            record["profile"] = py_spy(app_pid, max(3, int(d.sample)), d.profile_dir / "app-drain.raw", d.say)
        record["screen_at_end"] = tmux.capture("app")
    finally:
        record["quit"] = quit_app(d.say, tmux, app_pid, tree)
        tmux.kill_server()
    return record


def measure(
    urls: list[str],
    work: Path,
    target: Path,
    env: dict[str, str],
    getm_tui: str,
    log: Log,
    sample: float = SAMPLE,
    windows: int = WINDOWS,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Case (j) on a fresh queue of `urls` (small files). Returns the JSON record."""
    state = Path(tempfile.mkdtemp(prefix="j-state-", dir=work))
    out = Path(tempfile.mkdtemp(prefix="j-out-", dir=target))
    d = Drain(str(state / "data"), out, env, getm_tui, len(urls), sample, windows, log, profile_dir)
    record: dict[str, Any] = {
        "key": "j",
        "title": TITLE,
        "files": len(urls),
        "file_bytes": FILE_SIZE,
        "sample_s": sample,
        "targets": {"cpu_pct": TARGET_CPU_PCT, "jobs_per_s": TARGET_RATE},
        "nproc": os.cpu_count(),
    }
    log(f"\n== (j) {TITLE}: {len(urls):,} x {FILE_SIZE >> 10} KiB, the defaults, {windows} x {sample:.0f} s")
    started = time.monotonic()
    try:
        queue_files(d, urls)
        d.say(f"queued {len(urls):,} jobs with add -i")
        record["terminal"] = run_app(d)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, sqlite3.Error) as e:
        record.setdefault("terminal", {})["error"] = str(e)
        d.say(f"FAILED: {e}")
    finally:
        with contextlib.suppress(OSError, sqlite3.Error):
            record["states_at_end"] = states(d.db_path)
        record["seconds"] = round(time.monotonic() - started, 1)
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    return record


# -- report -----------------------------------------------------------------------------------------------


def _counted(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The windows taken while the drain went on (the one it ended in is left out)."""
    return [w for w in rec.get("terminal", {}).get("windows", []) if not w["drained"]]


def medians(rec: dict[str, Any]) -> dict[str, float] | None:
    windows = _counted(rec)
    if not windows:
        return None
    keys = ("cpu_pct", "jobs_per_s", "supervisor_cpu_pct", "hosts_cpu_pct", "loop_waiting_pct")
    return {k: statistics.median(w[k] for w in windows) for k in keys}


def table(rec: dict[str, Any]) -> str:
    """(j)'s part of the report: each window, and the medians the target is judged on."""
    term = rec.get("terminal", {})
    lines = [
        f"(j) {TITLE}: {rec['files']:,} x {rec['file_bytes'] >> 10} KiB queued, the defaults, "
        f"on {rec.get('nproc', '?')} CPUs; states at the end: {rec.get('states_at_end', '?')} "
        f"({rec.get('seconds', '?')} s)"
    ]
    if "error" in term:
        lines.append(f"  FAILED: {term['error']}")
    if term.get("first_rows_s") is not None:
        lines.append(f"  first rows on the screen {term['first_rows_s']:.2f} s after the app started")
    for n, w in enumerate(term.get("windows", []), 1):
        ended = "  [the drain ended inside it: not counted]" if w["drained"] else ""
        lines.append(
            f"  window {n} ({w['wall_s']:.1f} s): app {w['cpu_pct']:5.1f}% of a core at "
            f"{w['jobs_per_s']:6.0f} jobs/s; supervisor {w['supervisor_cpu_pct']:.0f}%, job hosts "
            f"{w['hosts_cpu_pct']:.0f}%; event loop on a CPU {w['loop_on_cpu_pct']:.0f}%, waiting for one "
            f"{w['loop_waiting_pct']:.0f}%{ended}"
        )
    m = medians(rec)
    if m is not None:
        lines.append(
            f"  median of {len(_counted(rec))} window(s): app {m['cpu_pct']:.1f}% of a core at "
            f"{m['jobs_per_s']:.0f} jobs/s (supervisor {m['supervisor_cpu_pct']:.0f}%, job hosts "
            f"{m['hosts_cpu_pct']:.0f}%)"
        )
    return "\n".join(lines)


def target_line(rec: dict[str, Any]) -> str:
    """The target, judged only when the median rate reached TARGET_RATE jobs/s."""
    m = medians(rec)
    limit, rate = rec["targets"]["cpu_pct"], rec["targets"]["jobs_per_s"]
    if m is None:
        return f"  (j) app CPU while small jobs finish: not measured (<= {limit:.0f}%) n/a"
    head = f"  (j) app CPU while {m['jobs_per_s']:.0f} jobs/s finish: {m['cpu_pct']:.1f}% (<= {limit:.0f}%)"
    if m["jobs_per_s"] < rate:
        return f"{head} not judged: below {rate:.0f} jobs/s"
    return f"{head} {'MET' if m['cpu_pct'] <= limit else 'MISSED'}"
