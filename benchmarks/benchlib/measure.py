"""Running one command and measuring it: the environment it runs in, wall time from perf_counter around
the process, CPU and the largest process's peak RSS from GNU time, and (optionally) the peak memory of
the whole process tree.

GNU time's %M is ru_maxrss of the waited-for children, which is the peak of the single largest process,
not of the tree: for a multi-process tool (getm-tui's workers, getm's pool) it understates. So a sampler
walks the tree every SAMPLE_EVERY seconds and sums each process's PSS (proportional set size: shared
pages, such as a shared-memory block mapped by every worker, are split between their users instead of
being counted once per process), keeping the largest sum. It needs only /proc, not psutil.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GNU_TIME = "/usr/bin/time"
SAMPLE_EVERY = 0.05


# -- the environment of every measured program -------------------------------------------------------

# Python settings of the calling shell that a user's install would not have: without a bytecode cache
# every getm-tui process (coordinator and each spawned worker) compiles its modules at every start.
DROPPED_PYTHON_VARS = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONPYCACHEPREFIX")


def _dropped(name: str) -> bool:
    return name.startswith("GETM_TUI_") or "proxy" in name.lower() or name in DROPPED_PYTHON_VARS


def base_env(work: Path) -> dict[str, str]:
    """The environment for every tool: no proxies (all traffic stays on 127.0.0.1); getm-tui reading an
    empty config file, so a user's config or GETM_TUI_* variables cannot change what is measured; and
    Python tools keeping their bytecode under the temp dir (PYTHONPYCACHEPREFIX), so they run from a
    cache as an installed program would, without writing into the source tree."""
    env = {k: v for k, v in os.environ.items() if not _dropped(k)}
    config = work / "getm-tui.toml"
    config.write_text("")
    env.update(
        {
            "GETM_TUI_CONFIG": str(config),
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            "no_proxy": "*",
            "NO_PROXY": "*",
        }
    )
    return env


@dataclass
class Measurement:
    wall: float
    user: float
    sys: float
    max_rss_kib: int  # the largest single process (GNU time %M)
    tree_pss_kib: int | None  # the largest sum over the tree, sampled; None when not sampled
    returncode: int
    stdout: str
    stderr_tail: str

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _children(pid: int) -> list[int]:
    """Direct children of every thread of `pid` (a thread may fork too)."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(k) for k in f.read().split())
        except OSError:
            continue
    return kids


def descendants(root: int) -> list[int]:
    found: list[int] = []
    todo = _children(root)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(_children(pid))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting to be reaped does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def name_of(pid: int) -> str:
    """The kernel's name of the process (getm-supervisor, getm-host-N, python3...)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _kib_field(path: str, field: str) -> int:
    """A `Field:   N kB` line of a /proc file; 0 when the process is gone."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rss_kib(pid: int) -> int:
    return _kib_field(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid: int) -> int:
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")


class TreeSampler:
    """A thread that samples the summed PSS of `root`'s descendants until stopped; `peak` is the largest
    sum seen. Short peaks between samples are missed, which is why it is a floor, not an exact figure."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(pss_kib(p) for p in descendants(self.root)))
            self._stop.wait(SAMPLE_EVERY)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _parse_time(path: Path) -> tuple[float, float, int]:
    """user, sys, maxrss from GNU time's -o file; its last line is ours (a first line may say that the
    command exited non-zero)."""
    try:
        lines = path.read_text().strip().splitlines()
        _elapsed, user, sys_, rss = lines[-1].split()
        return float(user), float(sys_), int(rss)
    except (OSError, ValueError, IndexError):
        return float("nan"), float("nan"), 0


def tail_of(path: Path, size: int) -> str:
    """The last `size` bytes of a file as text, without reading the rest (`ls` of a big queue writes
    a hundred MiB)."""
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - size))
        return f.read().decode(errors="replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group we created for this command (its pid is the group id)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_measured(
    argv: list[str],
    scratch: Path,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 600.0,
    sample_tree: bool = False,
    stdout_to: Path | None = None,
) -> Measurement:
    """Run `argv` under GNU time in a process group of its own (so a timeout or Ctrl-C can end all of it,
    and only it); stdout goes to `stdout_to` (default: a scratch file) and its tail is kept for checks
    such as `md5sum`'s output."""
    scratch.mkdir(parents=True, exist_ok=True)
    time_file, err_file = scratch / "time.txt", scratch / "stderr.txt"
    out_file = stdout_to or scratch / "stdout.txt"
    full = [GNU_TIME, "-f", "%e %U %S %M", "-o", str(time_file), *argv]
    with open(out_file, "wb") as out, open(err_file, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True
        )
        sampler = TreeSampler(proc.pid) if sample_tree else None
        # Not proc.wait(timeout=...): with a timeout, Popen polls with sleeps that grow to 50 ms, so every
        # wall time came out rounded up to the next poll (runs of 0.97, 1.02, 1.07 s). A blocking wait
        # returns when the process does; a timer ends the group if it runs too long.
        expired = threading.Event()

        def expire() -> None:
            if proc.returncode is None:
                expired.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            returncode = proc.wait()
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            wall = time.perf_counter() - start
            timer.cancel()
            peak = sampler.stop() if sampler else None
        if expired.is_set():
            returncode = -9
    user, sys_, rss = _parse_time(time_file)
    stderr = err_file.read_text(errors="replace").strip().splitlines()
    return Measurement(
        wall=wall,
        user=user,
        sys=sys_,
        max_rss_kib=rss,
        tree_pss_kib=peak,
        returncode=returncode,
        stdout=tail_of(out_file, 4000),
        stderr_tail="\n".join(stderr[-5:]),
    )
