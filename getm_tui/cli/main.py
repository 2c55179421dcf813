"""Command line: argument parsing and the verbs.

Every mistake a user can make ends in one line on stderr and an exit code (0 ok, 1 a download failed,
2 usage or config, 130 interrupted), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from getm_tui import __version__
from getm_tui.cli import verbs
from getm_tui.cli.add import cmd_add
from getm_tui.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    INSECURE_VERBS,
    data_dir,
    fail,
    insecure_override,
    queue_override,
    setup_logging,
)
from getm_tui.cli.get import cmd_get
from getm_tui.cli.show import cmd_ls, cmd_show
from getm_tui.config import ConfigError, load, parse_size
from getm_tui.queue.states import STATES
from getm_tui.runner.process import flush_std_streams

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
        "--queue",
        metavar="URL",
        help="a PostgreSQL queue shared by a fleet (default: $GETM_TUI_QUEUE, the config's queue, else the "
        "data dir's own)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="the app: skip TLS certificate verification for every job the queue runs (warns)",
    )
    # The same options after the verb; SUPPRESS keeps a verb's parser from resetting what came before it.
    common: argparse.ArgumentParser = _Parser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--queue", metavar="URL", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest="verb", metavar="VERB", parser_class=_Parser
    )

    get = sub.add_parser("get", parents=[common], help="download one URL now, without the queue")
    get.add_argument("url", metavar="URL")
    get.add_argument("-o", "--output", metavar="PATH", help="file name or existing directory (default: .)")
    get.add_argument("-c", "--concurrency", type=_positive_int, metavar="N", help="connections (default 4)")
    get.add_argument(
        "--checksum",
        action="append",
        metavar="ALGO:HEX",
        help="expected md5/sha1/sha256/sha512/crc32c/crc32/crc64nvme (repeatable)",
    )
    get.add_argument(
        "--overwrite", action="store_true", help="replace an existing file instead of a new name"
    )
    _add_anonymous(get)
    _add_transfer_options(get)
    get.add_argument(
        "--no-sync",
        action="store_true",
        help="do not wait for the file to reach the disk (a power cut may lose it; for scratch disks)",
    )
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
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (config: metrics)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        default=argparse.SUPPRESS,
        help="skip TLS certificate verification for every job it runs (warns; for one job: add --insecure)",
    )
    p.add_argument(
        "--no-sync",
        action="store_true",
        help="record jobs done without syncing their files to disk (a power cut may lose them; sync = false)",
    )
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    # Imported here: the runner's display and protocol are not needed by `add`, `get` and the rest.
    from getm_tui.cli import run as headless

    return headless.cmd_run(args)


def _job_id(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a job id: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"not a job id: {value!r}")
    return n


def _add_queue_verbs(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
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
    add.add_argument(
        "--checksums-file",
        action="append",
        metavar="FILE",
        help="MD5SUMS, SHA256SUMS, md5sum.txt...: each URL it lists gets its checksum (repeatable)",
    )
    add.add_argument("--priority", type=int, default=0, metavar="N", help="higher runs first (default 0)")
    add.add_argument(
        "--insecure",
        action="store_true",
        default=argparse.SUPPRESS,
        help="skip TLS certificate verification for these jobs only (recorded with them; warns)",
    )
    _add_anonymous(add)
    add.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="list the URL and queue every file under it: an s3:// or gs:// prefix, an ftp(s):// or sftp://"
        " directory (also said by a trailing slash), an http(s):// index page",
    )
    add.add_argument("--include", action="append", metavar="GLOB", help="of a prefix, only paths matching")
    add.add_argument(
        "--exclude", action="append", metavar="GLOB", help="of a prefix, leave out paths matching"
    )
    add.add_argument(
        "--no-sync",
        action="store_true",
        help="these jobs are recorded done without syncing their files to disk (for scratch disks)",
    )
    add.set_defaults(func=cmd_add)

    ls = sub.add_parser("ls", parents=[common], help="list the jobs")
    form = ls.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="a JSON array of jobs")
    form.add_argument(
        "--jsonl", action="store_true", help="JSON lines: one job a line, as --json shows it (streams)"
    )
    ls.add_argument("--state", action="append", choices=STATES, help="only jobs in this state (repeatable)")
    ls.set_defaults(func=cmd_ls)

    show = sub.add_parser("show", parents=[common], help="everything about one job, with its history")
    show.add_argument("id", type=_job_id, metavar="ID")
    show.add_argument("--json", action="store_true", help="as JSON")
    show.set_defaults(func=cmd_show)

    for name, func, text in (
        ("pause", verbs.cmd_pause, "pause queued or active jobs"),
        ("resume", verbs.cmd_resume, "queue paused jobs again"),
        ("retry", verbs.cmd_retry, "queue failed or canceled jobs again"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("ids", nargs="+", type=_job_id, metavar="ID")
        p.set_defaults(func=func)
        if name == "retry":
            p.add_argument(
                "--url",
                metavar="NEW_URL",
                help="give the job a new URL (a signed URL that expired): it resumes from its parts when "
                "the object is the same, else starts over and says so",
            )

    rm = sub.add_parser("rm", parents=[common], help="remove jobs (and their partial files)")
    rm.add_argument("ids", nargs="+", type=_job_id, metavar="ID")
    rm.add_argument("--delete-file", action="store_true", help="also delete the downloaded file of done jobs")
    rm.set_defaults(func=verbs.cmd_rm)

    _add_mirror_parser(sub, common)

    runners = sub.add_parser("runners", parents=[common], help="a fleet's runners (on a PostgreSQL queue)")
    runners.add_argument("--json", action="store_true", help="a JSON array of runners")
    runners.set_defaults(func=_cmd_runners)


def _add_mirror_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "mirror",
        parents=[common],
        help="queue what is new or changed in a remote tree (SOURCE DEST, or NAME)",
    )
    p.add_argument("where", nargs="*", metavar="SOURCE DEST | NAME")
    p.add_argument("--saved", metavar="NAME", help="the mirror saved as [mirror.NAME] in the config")
    p.add_argument("--status", action="store_true", help="the saved mirrors and their last listing")
    p.add_argument("--depth", type=int, metavar="N", help="directory levels below SOURCE (0: its own files)")
    p.add_argument("--match", action="append", metavar="REGEX", help="only relative paths matching one")
    p.add_argument("--exclude", action="append", metavar="REGEX", help="leave out relative paths matching")
    p.add_argument("--delete", action="store_true", help="remove local files gone from the source")
    p.add_argument("--dry-run", action="store_true", help="say what would be queued and removed, do nothing")
    p.add_argument("--priority", type=int, default=0, metavar="N", help="of the jobs (default 0)")
    p.add_argument("-c", "--concurrency", type=_positive_int, metavar="N", help="connections per job")
    _add_anonymous(p)
    p.add_argument("--no-sync", action="store_true", help="jobs recorded done without syncing their files")
    p.set_defaults(func=_cmd_mirror)


def _cmd_mirror(args: argparse.Namespace) -> int:
    from getm_tui.cli.mirror import cmd_mirror

    if args.depth is not None and args.depth < 0:
        return fail("--depth must be 0 or more", EXIT_USAGE)
    return cmd_mirror(args)


def _cmd_runners(args: argparse.Namespace) -> int:
    from getm_tui.cli.fleet import cmd_runners

    return cmd_runners(args)


def _add_anonymous(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--anonymous",
        action="store_true",
        help="read s3:// and gs:// buckets without credentials (public buckets)",
    )


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


def _cmd_app(args: argparse.Namespace) -> int:
    """`getm-tui` with no verb: the Textual app on the persistent queue."""
    from getm_tui.app.app import GetmApp

    settings = load(getattr(args, "config", None), {**insecure_override(args), **queue_override(args)})
    directory = data_dir(args)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if settings.queue:
        code = verbs.check_reachable(args, settings)
        if code:
            return code
    logging.getLogger().handlers.clear()  # the app's screen is the terminal: no log lines on it
    app = GetmApp(directory, settings)
    try:
        return app.run() or 0
    finally:
        if app.link is not None:
            app.link.close()  # after a crash too: a supervisor we started must not outlive us


def entry() -> None:
    """The `getm-tui` program: main(), then out.

    A command's work is done when it returns: files closed and renamed, queue transactions committed,
    processes joined. The interpreter's teardown after that (dropping modules and objects one by one) is
    work nobody waits for, so a command leaves without it. The app does
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
    setup_logging(args.verbose)
    if not args.verb:
        args.func = _cmd_app
    return args


def _dispatch(args: argparse.Namespace) -> int:
    if getattr(args, "insecure", False) and args.verb not in INSECURE_VERBS:
        return fail(f"--insecure goes with the app, run, add or get, not {args.verb}", EXIT_USAGE)
    try:
        return int(args.func(args))
    except ConfigError as e:
        return fail(str(e), EXIT_USAGE)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
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
