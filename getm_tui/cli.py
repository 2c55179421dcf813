"""Command line: argument parsing and the verbs.

Every mistake a user can make ends in one line on stderr and an exit code (0 ok, 1 a download failed,
2 usage or config, 130 interrupted), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from getm_tui import __version__, humanize, verbs
from getm_tui.config import ConfigError, Settings, load, parse_size
from getm_tui.process import flush_std_streams

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STATES = ("queued", "active", "paused", "done", "failed", "canceled")  # getm_tui.queue.STATES, kept light

log = logging.getLogger("getm_tui")


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line instead of usage plus a message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def _size_arg(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="getm-tui", description="A terminal download manager for data URLs.")
    parser.add_argument("--version", action="version", version=f"getm-tui {__version__}")
    parser.add_argument("--config", metavar="FILE", help="config file (default: the user config dir)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (-vv for debug)")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the queue lives (default: $GETM_TUI_DATA_DIR or the user data dir)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="the app: skip TLS certificate verification for every job the queue runs (warns)",
    )
    # The same options after the verb; SUPPRESS keeps a verb's parser from resetting what came before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    get = sub.add_parser("get", parents=[common], help="download one URL now, without the queue")
    get.add_argument("url", metavar="URL")
    get.add_argument("-o", "--output", metavar="PATH", help="file name or existing directory (default: .)")
    get.add_argument("-c", "--concurrency", type=_positive_int, metavar="N", help="connections (default 4)")
    get.add_argument(
        "--checksum",
        action="append",
        metavar="ALGO:HEX",
        help="expected md5/sha1/sha256/sha512/crc32c (repeatable)",
    )
    get.add_argument(
        "--overwrite", action="store_true", help="replace an existing file instead of a new name"
    )
    _add_transfer_options(get)
    get.set_defaults(func=cmd_get)
    _add_queue_verbs(sub, common)
    _add_run_parser(sub, common)
    return parser


def _add_run_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="run the queue headless (for servers)")
    p.add_argument(
        "--once", action="store_true", help="exit when nothing is queued or active (1 if a job failed)"
    )
    p.add_argument(
        "--json", action="store_true", help="JSON lines: state changes and progress, for log collectors"
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        default=argparse.SUPPRESS,
        help="skip TLS certificate verification for every job it runs (warns; for one job: add --insecure)",
    )
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    # Imported here: the runner's display and protocol are not needed by `add`, `get` and the rest.
    from getm_tui import headless

    return headless.cmd_run(args)


def _job_id(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a job id: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"not a job id: {value!r}")
    return n


def _add_queue_verbs(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """add, ls, show, pause, resume, retry, rm: they work on the queue directly, supervisor or not."""
    add = sub.add_parser("add", parents=[common], help="queue URLs; prints the new job ids")
    add.add_argument("urls", nargs="*", metavar="URL")
    add.add_argument(
        "-i", "--input", metavar="FILE", help="read URLs from FILE (- for stdin): one per line, # comments"
    )
    add.add_argument(
        "-d", "--dir", metavar="DIR", help="existing directory to save to (default: download_dir)"
    )
    add.add_argument("-o", "--output", metavar="NAME", help="file name (one URL only)")
    add.add_argument("-c", "--concurrency", type=_positive_int, metavar="N", help="connections per job")
    add.add_argument(
        "--checksum", action="append", metavar="ALGO:HEX", help="expected checksum (one URL only; repeatable)"
    )
    add.add_argument("--priority", type=int, default=0, metavar="N", help="higher runs first (default 0)")
    add.add_argument(
        "--insecure",
        action="store_true",
        default=argparse.SUPPRESS,
        help="skip TLS certificate verification for these jobs only (recorded with them; warns)",
    )
    add.set_defaults(func=verbs.cmd_add)

    ls = sub.add_parser("ls", parents=[common], help="list the jobs")
    ls.add_argument("--json", action="store_true", help="a JSON array of jobs")
    ls.add_argument("--state", action="append", choices=STATES, help="only jobs in this state (repeatable)")
    ls.set_defaults(func=verbs.cmd_ls)

    show = sub.add_parser("show", parents=[common], help="everything about one job, with its history")
    show.add_argument("id", type=_job_id, metavar="ID")
    show.add_argument("--json", action="store_true", help="as JSON")
    show.set_defaults(func=verbs.cmd_show)

    for name, func, text in (
        ("pause", verbs.cmd_pause, "pause queued or active jobs"),
        ("resume", verbs.cmd_resume, "queue paused jobs again"),
        ("retry", verbs.cmd_retry, "queue failed or canceled jobs again"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("ids", nargs="+", type=_job_id, metavar="ID")
        p.set_defaults(func=func)

    rm = sub.add_parser("rm", parents=[common], help="remove jobs (and their partial files)")
    rm.add_argument("ids", nargs="+", type=_job_id, metavar="ID")
    rm.add_argument("--delete-file", action="store_true", help="also delete the downloaded file of done jobs")
    rm.set_defaults(func=verbs.cmd_rm)


def _add_transfer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--part-size", type=_size_arg, metavar="SIZE", help="largest part per request (default 16M)"
    )
    p.add_argument("--retries", type=int, metavar="N", help="retries per part (default 6)")
    p.add_argument("--connect-timeout", type=float, metavar="S", help="seconds (default 10)")
    p.add_argument("--read-timeout", type=float, metavar="S", help="seconds without data (default 60)")
    p.add_argument(
        "--insecure",
        action="store_true",
        default=argparse.SUPPRESS,
        help="skip TLS certificate verification (warns)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, only the result and errors")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "concurrency": getattr(args, "concurrency", None),
        "part_size": getattr(args, "part_size", None),
        "retries": getattr(args, "retries", None),
        "connect_timeout": getattr(args, "connect_timeout", None),
        "read_timeout": getattr(args, "read_timeout", None),
    }
    if getattr(args, "insecure", False):
        overrides["verify_tls"] = False
    return load(args.config, overrides)


def _setup_logging(verbose: int, rich_console: object | None = None) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("getm-tui: %(levelname)s: %(message)s"))
    if rich_console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=rich_console, show_path=False, show_time=False)  # type: ignore[arg-type]
    from getm_tui.engine.urls import RedactingFilter

    handler.addFilter(RedactingFilter())  # -vv shows urllib3's lines, which hold each request's query
    root.addHandler(handler)
    root.setLevel(level)


def cmd_get(args: argparse.Namespace) -> int:
    from getm_tui.engine import (
        Cancelled,
        DownloadError,
        EngineError,
        IntegrityError,
        Options,
        UsageError,
        download,
    )
    from getm_tui.engine.checksum import expected_from
    from getm_tui.engine.urls import redact, validate

    settings = _settings(args)
    try:
        url = validate(args.url)
        expected = expected_from(args.checksum)
    except UsageError as e:
        return _fail(str(e), EXIT_USAGE)
    warning = tls_off_warning(args, settings, "for this download")
    if warning:
        log.warning("%s", warning)
    options = Options(
        concurrency=settings.concurrency,
        part_size=settings.part_size,
        retries=settings.retries,
        rate_limit=settings.rate_limit or None,
        http=settings.http(),
    )
    display = _GetDisplay(redact(url), quiet=args.quiet)
    _setup_logging(args.verbose, display.console if display.live else None)
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
        return _fail("interrupted; run the same command again to resume", EXIT_INTERRUPTED)
    except UsageError as e:
        return _fail(str(e), EXIT_USAGE)
    except IntegrityError as e:
        return _fail(str(e), EXIT_FAILED)
    except (DownloadError, EngineError) as e:
        return _fail(str(e), EXIT_FAILED)
    except OSError as e:
        return _fail(f"{e.strerror or e}: {e.filename or ''}".rstrip(": "), EXIT_FAILED)
    finally:
        signal.signal(signal.SIGINT, previous)
    rate = result.size / result.elapsed if result.elapsed > 0 else 0
    verdict = result.verdict
    if result.outcomes:
        checked = ", ".join(
            sorted({f"{o.expected.algorithm} ({o.expected.source})" for o in result.outcomes})
        )
        verdict = f"{verdict}: {checked}"
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
        self.task = None
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


def _cmd_app(args: argparse.Namespace) -> int:
    """`getm-tui` with no verb: the Textual app on the persistent queue."""
    from getm_tui.app import GetmApp
    from getm_tui.verbs import data_dir

    settings = load(getattr(args, "config", None), insecure_override(args))
    directory = data_dir(args)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    logging.getLogger().handlers.clear()  # the app's screen is the terminal: no log lines on it
    app = GetmApp(directory, settings)
    try:
        return app.run() or 0
    finally:
        if app.link is not None:
            app.link.close()  # after a crash too: a supervisor we started must not outlive us


INSECURE_VERBS = (None, "run", "add", "get")


def insecure_override(args: argparse.Namespace) -> dict[str, bool]:
    """Settings overrides for --insecure (before or after the verb); none when it is not given."""
    return {"verify_tls": False} if getattr(args, "insecure", False) else {}


def tls_off_warning(args: argparse.Namespace, settings: Settings, what: str) -> str | None:
    """The one warning line when TLS verification is off, naming why (a flag, or the config), else None."""
    if settings.verify_tls:
        return None
    flag = getattr(args, "insecure", False)
    why = "--insecure" if flag else "verify_tls = false in the config or environment"
    return f"TLS certificate verification is off {what} ({why})"


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"getm-tui: {message}\n")
    return code


def entry() -> None:
    """The `getm-tui` program: main(), then out.

    A command's work is done when it returns: files closed and renamed, queue transactions committed,
    processes joined. The interpreter's teardown after that (dropping modules and objects one by one) took
    about 30 ms, a fortieth of a 1 GiB `get` on loopback, so a command leaves without it. The app does
    not: its supervisor may outlive it, and multiprocessing's exit hook is what waits for that.
    """
    args = _parse(None)
    code = _dispatch(args)
    if args.verb is None:
        raise SystemExit(code)
    logging.shutdown()
    flush_std_streams()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    return _dispatch(_parse(argv))


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    if not args.verb:
        args.func = _cmd_app
    return args


def _dispatch(args: argparse.Namespace) -> int:
    if getattr(args, "insecure", False) and args.verb not in INSECURE_VERBS:
        return _fail(f"--insecure goes with the app, run, add or get, not {args.verb}", EXIT_USAGE)
    try:
        return int(args.func(args))
    except ConfigError as e:
        return _fail(str(e), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # `getm-tui ls | head`: stop quietly, and keep Python from failing again when it flushes at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK


if __name__ == "__main__":
    entry()
