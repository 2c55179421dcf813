"""`getm-tui run`: the headless front end for servers.

It starts a supervisor process on the queue and shows what happens: a live table on a terminal, JSON
lines with --json (one per state change, a progress line every second) for log collectors, plain lines
otherwise. SIGINT / SIGTERM ask the supervisor to stop; it records state and exits within two seconds.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from typing import Any

from getm_tui import humanize
from getm_tui.config import Settings
from getm_tui.engine.forking import fork_is_safe
from getm_tui.runner import protocol as P
from getm_tui.runner.readiness import readable

PROGRESS_EVERY_JSON = 1.0
PROGRESS_EVERY_PLAIN = 5.0


class _Json:
    def __init__(self) -> None:
        self._last = 0.0

    def handle(self, msg: Any) -> None:
        now = time.time()
        if isinstance(msg, P.JobChanged):
            self._out({"event": "state", "id": msg.id, "state": msg.state, "message": msg.message})
        elif isinstance(msg, P.LogLine):
            self._out(
                {"event": "log", "level": logging.getLevelName(msg.level).lower(), "message": msg.message}
            )
        elif isinstance(msg, P.Snapshot) and msg.jobs and now - self._last >= PROGRESS_EVERY_JSON:
            self._last = now
            jobs = [
                {"id": j.id, "name": j.name, "size": j.size, "done": j.done, "rate": round(j.rate),
                 "connections": j.connections}
                for j in msg.jobs
            ]  # fmt: skip
            self._out({"event": "progress", "rate": round(msg.rate), "jobs": jobs})
        elif isinstance(msg, P.Hello):
            self._out({"event": "start", "pid": msg.pid, "data_dir": msg.data_dir})
        elif isinstance(msg, P.Finished):
            self._out({"event": "finished", "done": msg.done, "failed": msg.failed})

    def _out(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **record}
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


class _Plain:
    def __init__(self, verbose: bool) -> None:
        self._last = 0.0
        self.verbose = verbose

    def handle(self, msg: Any) -> None:
        if isinstance(msg, P.JobChanged):
            extra = f" ({msg.message})" if msg.message else ""
            print(f"job {msg.id}: {msg.state}{extra}", flush=True)
        elif isinstance(msg, P.LogLine):
            if msg.level >= logging.WARNING or self.verbose:
                print(
                    f"getm-tui: {logging.getLevelName(msg.level).lower()}: {msg.message}",
                    file=sys.stderr,
                    flush=True,
                )
        elif isinstance(msg, P.Snapshot) and msg.jobs and time.time() - self._last >= PROGRESS_EVERY_PLAIN:
            self._last = time.time()
            for j in msg.jobs:
                print(f"job {j.id}: {_progress_text(j)}", flush=True)
        elif isinstance(msg, P.Finished):
            print(f"finished: {msg.done} done, {msg.failed} failed", flush=True)

    def close(self) -> None:
        pass


class _Live:
    """A rich live table of running jobs, with state changes printed above it."""

    def __init__(self, verbose: bool) -> None:
        from rich.console import Console
        from rich.live import Live

        self.verbose = verbose
        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=True)
        self.live.start()

    def handle(self, msg: Any) -> None:
        if isinstance(msg, P.JobChanged):
            extra = f" ({msg.message})" if msg.message else ""
            self.console.print(f"job {msg.id}: [bold]{msg.state}[/]{extra}", highlight=False)
        elif isinstance(msg, P.LogLine):
            if msg.level >= logging.WARNING or self.verbose:
                self.console.print(f"[yellow]{msg.message}[/]", highlight=False)
        elif isinstance(msg, P.Snapshot):
            self.live.update(self._table(msg))
        elif isinstance(msg, P.Finished):
            self.console.print(f"finished: {msg.done} done, {msg.failed} failed")

    def _table(self, snap: P.Snapshot) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table(box=None, expand=True, title=f"{len(snap.jobs)} running, {humanize.rate(snap.rate)}")
        for col in ("id", "name", "progress", "size", "speed", "ETA", "conns"):
            table.add_column(col, no_wrap=True, justify="right" if col != "name" else "left")
        for j in snap.jobs:
            eta = (j.size - j.done) / j.rate if j.size and j.rate else None
            bar = ProgressBar(total=j.size or 1, completed=j.done if j.size else 0, width=20)
            table.add_row(
                str(j.id), j.name, bar, humanize.size(j.size), humanize.rate(j.rate), humanize.duration(eta),
                str(j.connections),
            )  # fmt: skip
        return table

    def close(self) -> None:
        self.live.stop()


def _progress_text(j: P.LiveJob) -> str:
    pct = f" ({100 * j.done / j.size:.0f}%)" if j.size else ""
    rate = humanize.rate(j.rate)
    return f"{humanize.size(j.done)} of {humanize.size(j.size)}{pct}, {rate}, {j.connections} conn"


def run(
    data_dir: str, settings: Settings, once: bool, as_json: bool, verbose: int, warning: str | None = None
) -> int:
    """Run the queue until signalled (or, with once, until nothing is left); the exit code.

    `warning`: a line to show first, in the display's own form (TLS verification turned off).
    """
    from getm_tui.runner.link import spawn

    if as_json:
        display: Any = _Json()
    elif sys.stdout.isatty():
        display = _Live(verbose > 0)
    else:
        display = _Plain(verbose > 0)
    if warning:
        display.handle(P.LogLine(logging.WARNING, warning))
    # Forked when this process has no other thread (the live table's refresh thread is one); it has
    # no queue open.
    proc, conn = spawn(data_dir, settings, once=once, fork=fork_is_safe())
    stopping = {"asked": False}

    def ask_stop(_sig: int, _frame: object) -> None:
        if not stopping["asked"]:
            stopping["asked"] = True
            try:
                conn.send(P.Shutdown())
            except OSError:
                pass

    signal.signal(signal.SIGINT, ask_stop)
    signal.signal(signal.SIGTERM, ask_stop)
    code = 0
    finished: P.Finished | None = None
    try:
        while True:
            try:
                # A message already waiting is read without Connection.poll's selector (one built per
                # call): a queue of small files sends thousands.
                if not readable(conn) and not conn.poll(0.2):
                    if not proc.is_alive():
                        break
                    continue
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(msg, P.Busy):
                display.close()
                who = f"process {msg.pid}" if msg.pid else "another process"
                sys.stderr.write(f"getm-tui: the queue in {data_dir} is already run by {who}\n")
                code = 2
                break
            if isinstance(msg, P.Fatal):
                display.close()
                sys.stderr.write(f"getm-tui: {msg.message}\n")
                code = 2
                break
            display.handle(msg)
            if isinstance(msg, P.Finished):
                finished = msg
    finally:
        display.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(1)
        conn.close()
    if code:
        return code
    if finished is None and proc.exitcode not in (0, None):
        sys.stderr.write(f"getm-tui: the supervisor stopped unexpectedly (exit code {proc.exitcode})\n")
        return 1
    if once and finished is not None and finished.failed:
        return 1
    return 0


def cmd_run(args: Any) -> int:
    """`getm-tui run`."""
    from getm_tui.cli.common import (
        data_dir,
        insecure_override,
        queue_override,
        sync_override,
        tls_off_warning,
    )
    from getm_tui.cli.verbs import check_reachable
    from getm_tui.config import load

    settings = load(
        getattr(args, "config", None),
        {**insecure_override(args), **queue_override(args), **sync_override(args), "metrics": args.metrics},
    )
    directory = data_dir(args)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if settings.queue:
        code = check_reachable(args, settings)
        if code:
            return code
    warning = tls_off_warning(args, settings, "for every job")
    return run(directory, settings, args.once, args.json, getattr(args, "verbose", 0), warning)
