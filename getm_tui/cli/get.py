"""`getm-tui get`: one download now, no queue, with a progress line or a live bar."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from getm_tui import humanize
from getm_tui.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    settings_from,
    setup_logging,
    tls_off_warning,
)

if TYPE_CHECKING:
    from rich.progress import TaskID

log = logging.getLogger("getm_tui")


def cmd_get(args: argparse.Namespace) -> int:
    from getm_tui.engine import (
        Cancelled,
        DownloadError,
        EngineError,
        IntegrityError,
        UsageError,
        download,
    )
    from getm_tui.engine.checksum import expected_from
    from getm_tui.engine.urls import redact, validate

    settings = settings_from(args)
    try:
        url = validate(args.url)
        expected = expected_from(args.checksum)
    except UsageError as e:
        return fail(str(e), EXIT_USAGE)
    warning = tls_off_warning(args, settings, "for this download")
    if warning:
        log.warning("%s", warning)
    options = settings.engine_options(
        rate_limit=settings.rate_limit or None,
        access=settings.access(anonymous=bool(getattr(args, "anonymous", False))),
        sync="here" if settings.sync else "off",
    )
    display = _GetDisplay(redact(url), quiet=args.quiet)
    setup_logging(args.verbose, display.console if display.live else None)
    cancel = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def interrupt(_sig: int, _frame: object) -> None:
        cancel.set()

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        with display:
            result = download(
                url,
                args.output,
                concurrency=settings.concurrency,
                checksum=expected,
                overwrite=args.overwrite,
                options=options,
                progress=display.update,
                cancel=cancel,
                on_probe=display.probed,
            )
    except Cancelled:
        return fail("interrupted; run the same command again to resume", EXIT_INTERRUPTED)
    except UsageError as e:
        return fail(str(e), EXIT_USAGE)
    except IntegrityError as e:
        return fail(str(e), EXIT_FAILED)
    except (DownloadError, EngineError) as e:
        return fail(str(e), EXIT_FAILED)
    except OSError as e:
        return fail(f"{e.strerror or e}: {e.filename or ''}".rstrip(": "), EXIT_FAILED)
    finally:
        signal.signal(signal.SIGINT, previous)
    rate = result.size / result.elapsed if result.elapsed > 0 else 0
    verdict: str = result.verdict
    if result.outcomes:
        checked = ", ".join(
            sorted({f"{o.expected.algorithm} ({o.expected.source})" for o in result.outcomes})
        )
        verdict = f"{verdict}: {checked}"
    elif result.archive:
        verdict = f"{verdict}, archive intact ({result.archive})"
    resumed = f", resumed from {humanize.size(result.resumed)}" if result.resumed else ""
    print(
        f"saved {result.path} ({humanize.size(result.size)} in {humanize.duration(result.elapsed)}, "
        f"{humanize.rate(rate)}{resumed}; {verdict})"
    )
    return EXIT_OK


class _GetDisplay:
    """Progress of `get`: a rich bar on a terminal, a plain line every few seconds otherwise."""

    PLAIN_EVERY = 2.0

    def __init__(self, label: str, quiet: bool) -> None:
        self.label = label
        self.quiet = quiet
        self.live = sys.stderr.isatty() and not quiet
        self.console = None
        self.progress = None
        self.task: TaskID | None = None
        self._last_plain = 0.0
        self._name = label
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.console = Console(stderr=True)
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[conns]} conn"),
                console=self.console,
                transient=False,
            )

    def __enter__(self) -> _GetDisplay:
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task(self._name, total=None, conns=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def probed(self, probe: object, target: str) -> None:
        self._name = os.path.basename(target)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=self._name, total=getattr(probe, "size", None))

    def update(self, p: object) -> None:
        done = getattr(p, "done", 0)
        size = getattr(p, "size", None)
        conns = getattr(p, "connections", 0)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=done, total=size, conns=conns)
            return
        if self.quiet:
            return
        now = time.monotonic()
        if now - self._last_plain < self.PLAIN_EVERY:
            return
        self._last_plain = now
        elapsed = getattr(p, "elapsed", 0.0) or 0.0
        rate = done / elapsed if elapsed else 0.0
        pct = f" ({100 * done / size:.0f}%)" if size else ""
        eta = humanize.duration((size - done) / rate) if size and rate else "-"
        print(
            f"{self._name}: {humanize.size(done)} of {humanize.size(size)}{pct}, {humanize.rate(rate)}, "
            f"ETA {eta}, {conns} connection(s)",
            file=sys.stderr,
            flush=True,
        )
