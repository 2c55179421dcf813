"""The queue verbs: add, ls, show, pause, resume, retry, rm.

They read and write the queue directly (no supervisor needed). Each one checks all of its input before it
changes anything, so bad input ends in one line on stderr and exit 2 with the queue as it was. Imports of the
queue and the engine are kept inside the functions so `getm-tui --help` stays quick.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from getm_tui import humanize
from getm_tui.cli.common import EXIT_FAILED, EXIT_OK, data_dir, fail, warn

if TYPE_CHECKING:
    from getm_tui.queue.errors import QueueCorrupt
    from getm_tui.queue.interface import JobQueue
    from getm_tui.queue.records import Job, JobSpec

# C0/C1 control characters become "?" in anything shown, so text from a server cannot drive the terminal.
_CONTROLS = {c: "?" for c in (*range(0x20), *range(0x7F, 0xA0))}


class Usage(Exception):
    """Bad input: one line for the user, exit 2."""


def verb(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the queue's and the verbs' errors into one line and exit 2."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        from getm_tui.queue.errors import QueueCorrupt, QueueError

        try:
            return fn(args)
        except Usage as e:
            return fail(str(e))
        except QueueCorrupt as e:
            return _damaged_midway(args, e)
        except QueueError as e:
            return fail(str(e))

    return run


def _timeout_ms(args: argparse.Namespace) -> int:
    """queue_timeout from the config file or GETM_TUI_QUEUE_TIMEOUT, in the queue's milliseconds."""
    from getm_tui.config import load

    return int(load(getattr(args, "config", None)).queue_timeout * 1000)


def _open(args: argparse.Namespace) -> JobQueue:
    """The queue, checked: a damaged file is backed up and rebuilt from what can be read, with a warning."""
    from getm_tui.queue.interface import open_queue

    return open_queue(data_dir(args), timeout_ms=_timeout_ms(args), recover=True)


def _damaged_midway(args: argparse.Namespace, e: QueueCorrupt) -> int:
    """Damage the check at open did not see: the command's transaction was rolled back, so recover now
    and ask for the command again rather than run it twice (`ls` may have printed part of its table)."""
    from getm_tui.queue.errors import QueueError
    from getm_tui.queue.salvage import recover

    try:
        done = recover(e.path, e.ino, e.reason, _timeout_ms(args) / 1000)
    except QueueError as again:
        return fail(str(again))
    if done is not None:
        logging.getLogger(__name__).warning("%s", done.message())
    return fail(f"{e}; nothing was changed: run the command again")


def _clean(text: object) -> str:
    return str(text).translate(_CONTROLS)


# -- add ----------------------------------------------------------------------------------------------


def _read_lines(source: str) -> tuple[str, list[str]]:
    """(the name to show, the lines) of an input file, or '-' for stdin."""
    if source == "-":
        try:
            return "stdin", sys.stdin.read().splitlines()
        except UnicodeDecodeError:
            raise Usage("stdin is not UTF-8 text") from None
    try:
        with open(source, encoding="utf-8-sig") as f:
            return source, f.read().splitlines()
    except UnicodeDecodeError:
        raise Usage(f"{source} is not UTF-8 text") from None
    except OSError as e:
        raise Usage(f"cannot read {source}: {e.strerror or e}") from None


def _entries(args: argparse.Namespace) -> list[tuple[str, list[str], str]]:
    """(url, checksums, where) for every URL, in order; `where` is '' or ' (line N of FILE)'."""
    out: list[tuple[str, list[str], str]] = [(url, [], "") for url in args.urls]
    if args.input is not None:
        name, lines = _read_lines(args.input)
        for n, line in enumerate(lines, 1):
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            words = []
            for token in tokens:
                if token.startswith("#"):
                    break
                words.append(token)
            # A line is `URL [ALGO:HEX ...]`: a URL holds no blanks, so anything after one is a checksum.
            out.append((words[0], words[1:], f" (line {n} of {name})"))
    if args.checksum and len(out) == 1:  # --checksum goes with the one URL, wherever it came from
        url, checksums, where = out[0]
        out[0] = (url, [*checksums, *args.checksum], where)
    return out


def _directory(args: argparse.Namespace) -> str:
    chosen = args.dir
    if chosen is None:
        from getm_tui.config import load

        chosen = load(args.config).download_dir
    path = os.path.abspath(os.path.expanduser(str(chosen)))
    if not os.path.exists(path):
        raise Usage(f"directory does not exist: {path}")
    if not os.path.isdir(path):
        raise Usage(f"not a directory: {path}")
    if not os.access(path, os.W_OK | os.X_OK):
        raise Usage(f"directory is not writable: {path}")
    return path


def _output_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name or (os.sep != "/" and os.sep in name):
        raise Usage(f"-o takes a file name, not a path (use -d for the directory): {name!r}")
    return name


@verb
def cmd_add(args: argparse.Namespace) -> int:
    from getm_tui.engine.checksum import expected_from
    from getm_tui.engine.errors import UsageError
    from getm_tui.engine.urls import validate

    entries = _entries(args)
    if not entries:
        raise Usage("no URLs to add (give URLs, or -i FILE with one per line)")
    if args.output is not None and len(entries) != 1:
        raise Usage(f"-o NAME needs exactly one URL, got {len(entries)}")
    if args.checksum and len(entries) != 1:
        raise Usage(
            f"--checksum needs exactly one URL, got {len(entries)} "
            "(in an -i file, put checksums after each URL: URL ALGO:HEX)"
        )
    name = _output_name(args.output) if args.output is not None else None
    insecure = bool(getattr(args, "insecure", False))
    # Per job, like --insecure: what the runner does with these jobs' files, whatever its own setting.
    info = {**({"insecure": True} if insecure else {}), **({"no_sync": True} if args.no_sync else {})}
    directory = _directory(args)
    specs: list[JobSpec] = []
    for url, checksums, where in entries:
        for text in checksums:
            algo, sep, _ = text.partition(":")
            if not (sep and algo.isalnum()):  # not echoed: it may be the query of a URL split by a blank
                raise Usage(
                    f"unexpected text after the URL (URLs have no blanks; checksums are ALGO:HEX){where}"
                )
        try:
            url = validate(url)
            expected = expected_from(checksums)
        except UsageError as e:
            raise Usage(f"{e}{where}") from None
        specs.append(
            {
                "url": url,
                "directory": directory,
                "name": name,
                "priority": args.priority,
                "concurrency": args.concurrency,
                "checksums": [f"{x.algorithm}:{x.value}" for x in expected],
                # Per job, like curl -k on one command line: the runner verifies every other job.
                "info": info or None,
            }
        )
    with _open(args) as q:
        ids = q.add_many(specs)
    sys.stdout.write("".join(f"{i}\n" for i in ids))
    if insecure:
        shown = ", ".join(map(str, ids)) if len(ids) <= 10 else f"{ids[0]}-{ids[-1]}"
        warn(f"warning: TLS certificate verification will be off for job(s) {shown} (--insecure)")
    return EXIT_OK


# -- ls and show --------------------------------------------------------------------------------------

_WIDTH_SAMPLE = 1000  # column widths come from the first rows, so a huge queue streams
_NAME_MAX, _ERROR_MAX = 48, 60
# Widest a cell gets when rows beyond the sample may be wider: state, size ("1023.9 KiB"), done, verdict.
_STREAM_WIDTHS = {1: 8, 3: _NAME_MAX, 4: 10, 5: 10, 6: 10}


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _done(job: Job) -> str:
    if job.state == "done":
        return "100%"
    if job.size:
        return f"{min(100, 100 * job.bytes_done // job.size)}%"
    return humanize.size(job.bytes_done) if job.bytes_done else "-"


def _cells(job: Job) -> tuple[str, ...]:
    name = job.display_name
    if not name.isprintable() or len(name) > _NAME_MAX:
        name = _clip(_clean(name), _NAME_MAX)
    error = job.error
    if error:
        error = error.strip().split("\n", 1)[0]
        if not error.isprintable() or len(error) > _ERROR_MAX:
            error = _clip(_clean(error), _ERROR_MAX)
    return (
        str(job.id),
        job.state,
        str(job.priority),
        name,
        humanize.size(job.size) if job.size is not None else "?",
        _done(job),
        job.verdict or "-",
        error or "",
    )


_HEADER = ("ID", "STATE", "PRI", "NAME", "SIZE", "DONE", "VERDICT", "ERROR")
_RIGHT = (True, False, True, False, True, True, False, False)


def _table(q: JobQueue, states: Sequence[str] | None) -> None:
    write = sys.stdout.write
    jobs = q.iter_jobs(states)
    first = []
    for job in jobs:
        first.append(_cells(job))
        if len(first) >= _WIDTH_SAMPLE:
            break
    widths = [max([len(h), *(len(row[i]) for row in first)]) for i, h in enumerate(_HEADER)]
    if len(first) >= _WIDTH_SAMPLE:  # more rows may follow: make room for what they can hold
        top_id, low, high = q.extent()
        widths[0] = max(widths[0], len(str(top_id)))
        widths[2] = max(widths[2], len(str(low)), len(str(high)))
        for i, w in _STREAM_WIDTHS.items():
            widths[i] = max(widths[i], w)
    widths[-1] = 0  # the last column is not padded
    fmt = "  ".join(
        f"{{{i}:{'>' if right else '<'}{w}}}" for i, (w, right) in enumerate(zip(widths, _RIGHT, strict=True))
    ).format

    def line(cells: Sequence[str]) -> str:
        return fmt(*cells).rstrip() + "\n"

    write(line(_HEADER) + "".join(line(c) for c in first))
    batch: list[str] = []
    for job in jobs:
        batch.append(line(_cells(job)))
        if len(batch) >= 2000:
            write("".join(batch))
            batch.clear()
    write("".join(batch))


def _json(jobs: Iterator[Job]) -> None:
    write = sys.stdout.write
    dumps = json.JSONEncoder().encode  # ASCII: valid whatever the output's encoding
    sep = "["
    batch: list[str] = []
    for job in jobs:
        batch.append(sep + "\n" + dumps(job.public()))
        sep = ","
        if len(batch) >= 2000:
            write("".join(batch))
            batch.clear()
    write("".join(batch) + ("[]\n" if sep == "[" else "\n]\n"))


def _text_out() -> None:
    """Names from servers may not fit the terminal's encoding: show '?' rather than fail."""
    try:
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass


@verb
def cmd_ls(args: argparse.Namespace) -> int:
    _text_out()
    with _open(args) as q:
        if args.json:
            _json(q.iter_jobs(args.state))
        else:
            _table(q, args.state)
    return EXIT_OK


def _when(t: float | None) -> str:
    if not t:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _value(v: Any) -> str:
    if v is None or v == "" or v == [] or v == {}:
        return "-"
    if isinstance(v, (dict, list)):
        return _clean(json.dumps(v, ensure_ascii=False))
    return _clean(v)


@verb
def cmd_show(args: argparse.Namespace) -> int:
    _text_out()
    with _open(args) as q:
        job = q.check_ids([args.id])[0]
        events = q.events(job.id)
    pub = job.public()
    if args.json:
        pub["info"] = job.info
        pub["updated"] = job.updated
        pub["events"] = [{"at": at, "kind": kind, "message": message} for at, kind, message in events]
        sys.stdout.write(json.dumps(pub, indent=2) + "\n")
        return EXIT_OK
    size = f"{job.size} ({humanize.size(job.size)})" if job.size is not None else "?"
    fields = [
        ("id", job.id),
        ("state", job.state),
        ("name", pub["name"]),
        ("url", pub["url"]),
        ("directory", job.directory),
        ("path", job.path),
        ("priority", job.priority),
        ("concurrency", job.concurrency if job.concurrency is not None else "default"),
        ("size", size),
        ("bytes done", f"{job.bytes_done} ({_done(job)})"),
        ("checksums", ", ".join(job.checksums)),
        ("verdict", job.verdict),
        ("attempts", job.attempts),
        ("error", job.error),
        ("created", _when(job.created)),
        ("updated", _when(job.updated)),
        ("started", _when(job.started)),
        ("finished", _when(job.finished)),
    ]
    fields += [(f"info.{k}", v) for k, v in sorted(job.info.items())]
    out = [f"{k + ':':<12} {_value(v)}\n" for k, v in fields]
    out.append("integrity:" + ("" if job.integrity else " -") + "\n")
    for item in job.integrity:
        if isinstance(item, dict):
            pairs = list(item.items())
            out += [
                f"  {'- ' if i == 0 else '  '}{_clean(k)}: {_value(v)}\n" for i, (k, v) in enumerate(pairs)
            ]
        else:
            out.append(f"  - {_value(item)}\n")
    out.append("events:" + ("" if events else " -") + "\n")
    out += [f"  {_when(at)}  {_clean(kind)}: {_clean(message)}\n" for at, kind, message in events]
    sys.stdout.write("".join(out))
    return EXIT_OK


# -- pause, resume, retry (what each does: getm_tui.queue.states) ------------------------------------


@verb
def cmd_move(args: argparse.Namespace) -> int:
    """pause, resume and retry: the transition named by the verb, for every job given."""
    from getm_tui.queue.states import TRANSITIONS

    with _open(args) as q:
        outcomes = q.apply(TRANSITIONS[args.verb], args.ids)
    for outcome in outcomes:
        if outcome.message:
            warn(outcome.message)
    return EXIT_OK


cmd_pause = cmd_resume = cmd_retry = cmd_move


# -- rm -----------------------------------------------------------------------------------------------


@verb
def cmd_rm(args: argparse.Namespace) -> int:
    from getm_tui.queue.removal import delete_files

    with _open(args) as q:
        removals = q.remove(args.ids, bool(args.delete_file))
    code = EXIT_OK
    for path, e in delete_files([path for r in removals for path in r.files]):
        code = fail(f"cannot delete {path}: {e.strerror or e}", EXIT_FAILED)
    return code
