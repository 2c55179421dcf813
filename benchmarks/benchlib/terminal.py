"""The app in a terminal of our own: a private tmux server, the app's process found in its pane and quit as a
user quits, and the /proc figures the app's cases read (CPU of a process and of its children, bytes
written, how long a thread waited for a CPU). Shared by (f), (h)'s first rows and (j)."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib.measure import alive, descendants

SIZE = (120, 40)
POLL_EVERY = 0.005  # capture-pane polling period
CLK_TCK = os.sysconf("SC_CLK_TCK")

Log = Callable[[str], None]


# -- /proc ------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads, none of its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def tree_cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += cpu_seconds(pid)
    return total


def written_bytes(pid: int) -> int:
    """wchar from /proc/PID/io: bytes the process passed to write(2) and friends."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Waits for the processes to end; returns those still there after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


# -- tmux -------------------------------------------------------------------------------------------------


class Tmux:
    """A tmux server of our own (`-L NAME`, no config file): it never touches the user's sessions."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"getm-bench-{os.getpid()}"
        self.env = env

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-u", "-L", self.socket, "-f", "/dev/null", *args],
            env=self.env,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=10,
        )
        if done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args[:2])}: {done.stderr.strip()}")
        return done.stdout

    def new(self, name: str, command: str) -> None:
        self("new-session", "-d", "-s", name, "-x", str(SIZE[0]), "-y", str(SIZE[1]), command)

    def capture(self, name: str) -> str:
        return self("capture-pane", "-p", "-t", name)

    def send(self, name: str, key: str) -> None:
        self("send-keys", "-t", name, key)

    def pane_pid(self, name: str) -> int:
        return int(self("display-message", "-p", "-t", name, "#{pane_pid}").strip())

    def version(self) -> str:
        done = subprocess.run(["tmux", "-V"], capture_output=True, text=True)
        return done.stdout.strip()

    def kill_server(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self("kill-server")


def find_app_pid(pane_pid: int) -> int:
    """The getm-tui process in the pane (the shell execs it; its children are the supervisor)."""
    for pid in [pane_pid, *descendants(pane_pid)]:
        cmd = cmdline(pid)
        if "getm-tui" in cmd and "multiprocessing" not in cmd:
            return pid
    raise RuntimeError(f"no getm-tui process under the pane (pid {pane_pid})")


def wait_app_pid(tmux: Tmux, pane: str, timeout: float = 10.0) -> int:
    """The app's pid, once the pane's first process has exec'd it (right after `new-session` the pane's
    process can still be tmux's own fork, with tmux's command line)."""

    def probe() -> int | None:
        try:
            return find_app_pid(tmux.pane_pid(pane))
        except RuntimeError:
            return None

    pid, _ = poll_until(probe, timeout, every=0.02)
    return pid or find_app_pid(tmux.pane_pid(pane))  # the last try raises with the reason


def poll_until(probe: Callable[[], Any], timeout: float, every: float = POLL_EVERY) -> tuple[Any, float]:
    """Calls `probe` every `every` seconds until it returns something true; (value, when) or (None, when)."""
    deadline = time.perf_counter() + timeout
    while True:
        began = time.perf_counter()
        value = probe()
        now = time.perf_counter()
        if value or now > deadline:
            return value, now
        time.sleep(max(0.0, every - (now - began)))


def schedstat(pid: int, tid: int | None = None) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for one) of one thread, by default the main one: the main
    thread runs the event loop, so its waiting time is how long the app was kept from its work."""
    with open(f"/proc/{pid}/task/{tid or pid}/schedstat") as f:
        on_cpu, waiting, _slices = f.read().split()
    return int(on_cpu), int(waiting)


def set_nice(pid: int, nice: int) -> None:
    """Every thread of the process (Linux priorities are per thread)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)


def tmux_env(env: dict[str, str]) -> dict[str, str]:
    """The app's environment in our tmux: true colour, a UTF-8 locale, and not inside the user's tmux."""
    env = dict(env)
    env.setdefault("COLORTERM", "truecolor")
    if "UTF-8" not in (env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or "").upper():
        env["LANG"] = "C.UTF-8"
    env.pop("TMUX", None)
    return env


def quit_app(say: Log, tmux: Tmux, app_pid: int, tree: list[int]) -> str:
    """`q`, as a user quits: the app stops the supervisor it started. Anything of ours still running after
    that is ended by pid."""
    if not app_pid:
        return "not started"
    tree = sorted(set(tree) | set(descendants(app_pid)))
    how = "q"
    if alive(app_pid):
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            tmux.send("app", "q")
        if wait_gone([app_pid], 20):
            how = "q did not end the app in 20 s: SIGTERM"
            with contextlib.suppress(ProcessLookupError):
                os.kill(app_pid, signal.SIGTERM)
            wait_gone([app_pid], 5)
    left = wait_gone(tree, 15)
    for pid in left:  # the app's own children (supervisor, workers), never anything else
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if left:
        how += f"; {len(left)} child process(es) still running after 15 s were killed"
    say(f"quit: {how}")
    return how


def py_spy(pid: int, seconds: int, raw: Path, say: Log) -> dict[str, Any]:
    """`py-spy record -f raw` on one process for `seconds` (`pip install py-spy`; not a dependency):
    benchmarks/pyspy_top.py lists the top functions of the file it writes."""
    raw.parent.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    say(f"py-spy on pid {pid} for {seconds} s -> {raw}")
    try:
        done = subprocess.run(
            [spy, "record", "-p", str(pid), "-d", str(seconds), "-f", "raw", "-o", str(raw), "-r", "200"],
            capture_output=True,
            text=True,
        )
    except OSError as e:
        return {"raw": str(raw), "ok": False, "stderr": f"py-spy: {e}"}
    return {"raw": str(raw), "ok": done.returncode == 0, "stderr": done.stderr.strip()[-500:]}


def start_app(
    tmux: Tmux,
    getm_tui: str,
    row: re.Pattern[str],
    timeout: float,
    first: tuple[str, str] = ("idle", "exec cat"),
) -> tuple[int, float | None]:
    """The app in the pane "app" of `tmux`, after the pane `first` (name, command), which starts the
    server so that its options can be set: a crashed app's pane stays open, to show its traceback.
    Returns the app's pid and the seconds from starting it until `row` is on its screen (None: not in
    `timeout` seconds, or the app ended)."""
    tmux.new(*first)
    tmux("set-option", "-g", "remain-on-exit", "on")
    began = time.perf_counter()
    tmux.new("app", "exec " + shlex.quote(getm_tui))
    app_pid = wait_app_pid(tmux, "app")
    shown, at = poll_until(lambda: row.search(tmux.capture("app")) or not alive(app_pid), timeout, every=0.01)
    return app_pid, round(at - began, 3) if shown and alive(app_pid) else None
