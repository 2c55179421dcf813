"""Hooks: a command of the user's run when a job is done (`on_done`) or has failed (`on_fail`), as aria2's
--on-download-complete and --on-download-error are.

The command line is run by `/bin/sh -c`, so it may be a script's path or a short pipeline, with the job in
its environment:

    GETM_JOB_ID    the job's id             GETM_STATE    done | failed
    GETM_URL       the URL, redacted        GETM_VERDICT  verified | unverified | mismatch (or empty)
    GETM_PATH      the file (or "")         GETM_SIZE     its size in bytes (or "")
    GETM_ERROR     why it failed (or "")

GETM_URL is redacted as on screens (user:password and the query replaced by ***): a hook's output ends up
in logs and notifications, and a signed URL's query is a credential that must never reach one; the file
is at GETM_PATH, which is what a hook acts on.

Hooks run in threads of their own, at most MAX_RUNNING at a time, each in a new session so that one that
runs past `hook_timeout` is killed with everything it started. A hook that fails, hangs or cannot be
started is logged (on the job's history too) and never fails the job or stops the runner.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from getm_tui.engine.urls import redact, redact_text
from getm_tui.queue.records import Job

MAX_RUNNING = 4
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a hook past its time
OUTPUT_LIMIT = 200  # characters of a failing hook's last line of output kept in the log

# Takes (job id or None, level, text): what the supervisor logs and records as a job event.
Report = Callable[[tuple[int | None, int, str]], None]


@dataclass(frozen=True)
class _Call:
    which: str  # "on_done" or "on_fail"
    command: str
    job_id: int
    env: dict[str, str]


class Hooks:
    def __init__(self, on_done: str, on_fail: str, timeout: float, report: Report) -> None:
        self.commands = {"on_done": on_done, "on_fail": on_fail}
        self.timeout = timeout
        self.report = report
        self._pending: list[_Call] = []  # waiting for the queue's commit of the job's end
        self._ready: collections.deque[_Call] = collections.deque()
        self._busy = 0  # calls handed to threads and not yet finished
        self._threads = 0
        self._running: set[subprocess.Popen[bytes]] = set()
        self._cond = threading.Condition()

    @property
    def enabled(self) -> bool:
        return any(self.commands.values())

    def job_ended(self, job: Job) -> None:
        """Note the hook of a job that is done or failed; it starts at `release`, once that is committed
        (a hook may read the queue, and must find the job as it ended)."""
        which = "on_done" if job.state == "done" else "on_fail"
        command = self.commands[which]
        if command:
            self._pending.append(_Call(which, command, job.id, environment(job)))

    def release(self) -> None:
        """Start the hooks noted so far (the supervisor calls this once its writes are committed)."""
        if not self._pending:
            return
        calls, self._pending = self._pending, []
        with self._cond:
            self._ready.extend(calls)
            self._busy += len(calls)
            start = min(MAX_RUNNING - self._threads, len(self._ready))
            self._threads += max(0, start)
        for _ in range(max(0, start)):
            threading.Thread(target=self._work, name="hook", daemon=True).start()

    def close(self, grace: float | None = None) -> None:
        """Wait for the hooks started or waiting, each within its time limit, or `grace` seconds in all
        when given (the runner was told to stop); what still runs then is killed, what waits never runs."""
        self.release()
        with self._cond:
            rounds = -(-self._busy // MAX_RUNNING) if self._busy else 0
            limit = rounds * (self.timeout + 2 * KILL_GRACE + 1.0)
            if self._cond.wait_for(lambda: not self._busy, timeout=limit if grace is None else grace):
                return
            skipped, running = len(self._ready), list(self._running)
            self._ready.clear()
        self.report((None, logging.WARNING, f"stopping: {len(running)} hook(s) killed, {skipped} not run"))
        for proc in running:
            _kill_group(proc, wait=False)

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._ready:
                    self._threads -= 1
                    return
                call = self._ready.popleft()
            try:
                self._run(call)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _run(self, call: _Call) -> None:
        what = f"hook {call.which} for job {call.job_id}"
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", call.command],
                env={**os.environ, **call.env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed whole when past its time
            )
        except OSError as e:
            self.report((call.job_id, logging.WARNING, f"{what} could not start: {e.strerror or e}"))
            return
        started = time.monotonic()
        with self._cond:
            self._running.add(proc)
        try:
            output, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            message = f"{what} ran past its {self.timeout:g} s limit: killed"
            self.report((call.job_id, logging.WARNING, message))
            return
        finally:
            with self._cond:
                self._running.discard(proc)
        if proc.returncode == 0:
            took = time.monotonic() - started
            self.report((call.job_id, logging.INFO, f"{what} ran in {took:.1f} s"))
            return
        last = output.decode(errors="replace").strip().splitlines()[-1:] or [""]
        said = f": {redact_text(last[0])[:OUTPUT_LIMIT]}" if last[0] else ""
        code = proc.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"failed with exit code {code}"
        self.report((call.job_id, logging.WARNING, f"{what} {how}{said}"))


def environment(job: Job) -> dict[str, str]:
    """The variables a hook is given about `job` (see the module's docstring)."""
    return {
        "GETM_JOB_ID": str(job.id),
        "GETM_STATE": str(job.state),
        "GETM_URL": redact(job.url),
        "GETM_PATH": job.path or "",
        "GETM_SIZE": "" if job.size is None else str(job.size),
        "GETM_VERDICT": job.verdict or "",
        "GETM_ERROR": redact_text(job.error or ""),
    }


def _kill_group(proc: subprocess.Popen[bytes], wait: bool = True) -> None:
    """SIGTERM the hook's process group, SIGKILL what is left after KILL_GRACE, and reap the hook
    (`wait` False: SIGKILL at once, and its own thread reaps it)."""
    for sig in (signal.SIGTERM, signal.SIGKILL) if wait else (signal.SIGKILL,):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        if not wait:
            return
        try:
            proc.communicate(timeout=KILL_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue
