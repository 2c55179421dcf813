"""The queue verbs: add, ls, show, pause, resume, retry, rm.

They read and write the queue directly (no supervisor needed). Each one checks all of its input before it
changes anything, so bad input ends in one line on stderr and exit 2 with the queue as it was. Imports of the
queue and the engine are kept inside the functions so `getm-tui --help` stays quick.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from getm_tui import humanize
from getm_tui.cli.common import EXIT_FAILED, EXIT_OK, fail, queue_location, queue_override, warn

if TYPE_CHECKING:
    from getm_tui.config import Settings
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
    from getm_tui.config import load
    from getm_tui.queue.interface import open_queue

    settings = load(getattr(args, "config", None), queue_override(args))
    location = queue_location(args, settings)
    return open_queue(location, timeout_ms=int(settings.queue_timeout * 1000), recover=True)


def check_reachable(args: argparse.Namespace, settings: Settings) -> int:
    """Before a front end starts on a database queue: 0 if it can be opened, else exit 2 after one line
    (it may be down, or the string wrong: the reason is the driver's, without the password)."""
    from getm_tui.queue.errors import QueueError
    from getm_tui.queue.interface import open_queue

    location = queue_location(args, settings)
    try:
        open_queue(location, timeout_ms=int(settings.queue_timeout * 1000)).close()
    except QueueError as e:
        return fail(str(e))
    return EXIT_OK


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


def _read_lines(source: str) -> tuple[str, Iterator[str]]:
    """(the name to show, its lines as they are read) of an input file, or '-' for stdin: a list of a
    million URLs is never held whole."""
    if source == "-":
        return "stdin", _decoded(sys.stdin, "stdin")
    try:
        f = open(source, encoding="utf-8-sig")  # noqa: SIM115 - closed by _decoded when read to the end
    except OSError as e:
        raise Usage(f"cannot read {source}: {e.strerror or e}") from None
    return source, _decoded(f, source)


def _decoded(f: Iterable[str], name: str) -> Iterator[str]:
    """The file's lines, split where str.splitlines splits them (form feeds and such too), as it is read."""
    try:
        for line in f:
            yield from line.splitlines() or ("",)
    except UnicodeDecodeError:
        raise Usage(f"{name} is not UTF-8 text") from None
    except OSError as e:
        raise Usage(f"cannot read {name}: {e.strerror or e}") from None
    finally:
        if f is not sys.stdin:
            f.close()  # type: ignore[attr-defined]


def _entries(args: argparse.Namespace) -> Iterator[tuple[str, list[str], str]]:
    """(url, checksums, where) for every URL, in order, as the input is read; `where` is '' or
    ' (line N of FILE)'."""
    for url in args.urls:
        yield url, [], ""
    if args.input is None:
        return
    name, lines = _read_lines(args.input)
    for n, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) == 1:
            yield tokens[0], [], f" (line {n} of {name})"
            continue
        words = []
        for token in tokens:
            if token.startswith("#"):
                break
            words.append(token)
        # A line is `URL [ALGO:HEX ...]`: a URL holds no blanks, so anything after one is a checksum.
        yield words[0], words[1:], f" (line {n} of {name})"


def _one_url_options(
    args: argparse.Namespace, entries: Iterator[tuple[str, list[str], str]]
) -> Iterator[tuple[str, list[str], str]]:
    """The entries, checked against what needs exactly one URL (-o, --checksum) once the first two are
    read (here, before anything else is checked); the whole input is read only to say how many there were."""
    first = list(itertools.islice(entries, 2))
    if not first:
        raise Usage("no URLs to add (give URLs, or -i FILE with one per line)")
    if len(first) > 1 and (args.output is not None or args.checksum):
        count = len(first) + sum(1 for _ in entries)
        if args.output is not None:
            raise Usage(f"-o NAME needs exactly one URL, got {count}")
        raise Usage(
            f"--checksum needs exactly one URL, got {count} "
            "(in an -i file, put checksums after each URL: URL ALGO:HEX)"
        )
    if args.checksum:  # --checksum goes with the one URL, wherever it came from
        url, checksums, where = first[0]
        first[0] = (url, [*checksums, *args.checksum], where)
    return itertools.chain(first, entries)


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


def _job_info(insecure: bool, anonymous: bool) -> dict[str, Any] | None:
    """What a job records of how it is fetched. Per job, like curl -k on one command line: the runner
    verifies every other job, and reads buckets with credentials for every other job."""
    info = {"insecure": insecure, "anonymous": anonymous}
    return {k: True for k, v in info.items() if v} or None


class _URLCheck:
    """`engine.urls.validate`, with what only the scheme and host decide checked once per host.

    A list of a million URLs names a few hosts: whether `scheme://host[:port]/` is a URL validate takes is
    worked out once, and a URL made of such a prefix and a path of printable ASCII (no blank, no
    control character, nothing that moves where urlsplit ends the host) is valid whenever its prefix is.
    Anything else goes through validate itself, which also words every error."""

    _MAX_HOSTS = 10_000

    def __init__(self) -> None:
        from getm_tui.engine.errors import UsageError
        from getm_tui.engine.urls import validate

        self.validate = validate
        self.refused = UsageError
        self.hosts: set[str] = set()

    def __call__(self, url: str) -> str:
        host, slash, path = url.partition("://")[2].partition("/")
        if slash and url.isascii() and url.isprintable() and " " not in url:
            prefix = url[: len(url) - len(path)]
            if "?" not in host and "#" not in host:
                if prefix in self.hosts:
                    return url
                try:
                    self.validate(prefix)
                except self.refused:
                    pass  # the URL itself is checked below, and its error told
                else:
                    if len(self.hosts) >= self._MAX_HOSTS:
                        self.hosts.clear()
                    self.hosts.add(prefix)
                    return url
        return self.validate(url)


@dataclass
class _Adding:
    """What one `add` learns while its input streams past: the prefixes to list once the plain URLs are
    queued, and how many URLs a sums file gave checksums to."""

    prefixes: list[str] = field(default_factory=list)
    listed: int = 0
    urls: int = 0


def _specs(args: argparse.Namespace, adding: _Adding) -> Iterator[JobSpec]:
    """The jobs to add, checked one by one as the input is read (the queue's transaction takes them as
    they come, and a bad one rolls back all). What every job shares is worked out once; a bucket prefix
    is set aside in `adding` to be listed after."""
    from getm_tui.cli import tree
    from getm_tui.engine.checksum import expected_from
    from getm_tui.engine.checksum_files import read_sums_file
    from getm_tui.engine.errors import UsageError

    validate = _URLCheck()
    entries = _one_url_options(args, _entries(args))
    try:
        sums = [read_sums_file(path) for path in args.checksums_file or ()]
    except UsageError as e:
        raise Usage(str(e)) from None
    recursive = bool(getattr(args, "recursive", False))
    shared: dict[str, Any] = {
        "directory": _directory(args),
        "name": _output_name(args.output) if args.output is not None else None,
        "priority": args.priority,
        "concurrency": args.concurrency,
        "info": _job_info(bool(getattr(args, "insecure", False)), bool(getattr(args, "anonymous", False))),
    }
    for url, checksums, where in entries:
        for text in checksums:
            algo, sep, _ = text.partition(":")
            if not (sep and algo.isalnum()):  # not echoed: it may be the query of a URL split by a blank
                raise Usage(
                    f"unexpected text after the URL (URLs have no blanks; checksums are ALGO:HEX){where}"
                )
        try:
            url = validate(url)
            expected = expected_from(checksums) if checksums else []
        except UsageError as e:
            raise Usage(f"{e}{where}") from None
        if tree.is_prefix(url, recursive):
            if expected or shared["name"]:
                raise Usage(f"a prefix takes no checksum and no -o NAME: {url}{where}")
            adding.prefixes.append(url)
            continue
        if sums:
            published = [e for s in sums for e in s.for_url(url) if e not in expected]
            adding.listed += bool(published)
            expected = [*expected, *published]
        adding.urls += 1
        spec: JobSpec = {"url": url, **shared}  # type: ignore[typeddict-item]
        if expected:
            spec["checksums"] = [f"{x.algorithm}:{x.value}" for x in expected]
        yield spec
    if sums:
        files = ", ".join(s.source for s in sums)
        warn(f"checksums for {adding.listed} of {adding.urls} URL(s) from {files}")


_IDS_BLOCK = 100_000  # ids printed at a time


@verb
def cmd_add(args: argparse.Namespace) -> int:
    from getm_tui.cli import tree

    adding = _Adding()
    specs = _specs(args, adding)
    first = next(specs, None)  # bad options and an empty input are told before the queue is opened
    insecure = bool(getattr(args, "insecure", False))
    with _open(args) as q:
        ids = q.add_many(itertools.chain((first,), specs)) if first is not None else []
        for start in range(0, len(ids), _IDS_BLOCK):
            sys.stdout.write("".join(f"{i}\n" for i in ids[start : start + _IDS_BLOCK]))
        code = EXIT_OK
        if adding.prefixes:
            shared = {
                "priority": args.priority,
                "concurrency": args.concurrency,
                "info": _job_info(insecure, bool(getattr(args, "anonymous", False))),
            }
            code = tree.add_prefixes(args, q, adding.prefixes, _directory(args), shared)
    if insecure and ids:
        shown = ", ".join(map(str, ids)) if len(ids) <= 10 else f"{ids[0]}-{ids[-1]}"
        warn(f"warning: TLS certificate verification will be off for job(s) {shown} (--insecure)")
    if insecure and adding.prefixes:
        warn("warning: TLS certificate verification will be off for the listed objects' jobs (--insecure)")
    return code


# -- ls and show --------------------------------------------------------------------------------------

_WIDTH_SAMPLE = 1000  # column widths come from the first rows, so a huge queue streams
_WRITE_EVERY = 2000  # jobs per write: a reader sees the first lines at once, and a file fills quickly
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


def _holder(job: Job) -> str:
    """The fleet's runner holding a running job, as `host:pid`."""
    return f"{_clean(job.runner.host)}:{job.runner.pid}" if job.runner else "-"


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
        str.__str__(job.state),  # the stored text, without the enum's own (slower) formatting
        str(job.priority),
        name,
        humanize.size(job.size) if job.size is not None else "?",
        _done(job),
        job.verdict or "-",
        error or "",
    )


_HEADER = ("ID", "STATE", "PRI", "NAME", "SIZE", "DONE", "VERDICT", "ERROR")
_RIGHT = (True, False, True, False, True, True, False, False)
# A fleet's table has one more column, before the last: the runner holding each running job.
_FLEET_HEADER = (*_HEADER[:-1], "RUNNER", _HEADER[-1])
_FLEET_RIGHT = (*_RIGHT[:-1], False, _RIGHT[-1])
_RUNNER_WIDTH = 32


def _table(q: JobQueue, states: Sequence[str] | None, fleet: bool = False) -> None:
    write = sys.stdout.write
    jobs = q.iter_jobs(states)
    header, right = (_FLEET_HEADER, _FLEET_RIGHT) if fleet else (_HEADER, _RIGHT)

    def cells(job: Job) -> tuple[str, ...]:
        row = _cells(job)
        return (*row[:-1], _holder(job), row[-1]) if fleet else row

    first = []
    for job in jobs:
        first.append(cells(job))
        if len(first) >= _WIDTH_SAMPLE:
            break
    widths = [max([len(h), *(len(row[i]) for row in first)]) for i, h in enumerate(header)]
    if len(first) >= _WIDTH_SAMPLE:  # more rows may follow: make room for what they can hold
        top_id, low, high = q.extent()
        widths[0] = max(widths[0], len(str(top_id)))
        widths[2] = max(widths[2], len(str(low)), len(str(high)))
        for i, w in _STREAM_WIDTHS.items():
            widths[i] = max(widths[i], w)
        if fleet:
            widths[-2] = max(widths[-2], _RUNNER_WIDTH)
    widths[-1] = 0  # the last column is not padded
    fmt = "  ".join(
        f"{{{i}:{'>' if r else '<'}{w}}}" for i, (w, r) in enumerate(zip(widths, right, strict=True))
    ).format

    def line(cells: Sequence[str]) -> str:
        return fmt(*cells).rstrip() + "\n"

    write(line(header) + "".join(line(c) for c in first))
    batch: list[str] = []
    for job in jobs:
        batch.append(line(cells(job)))
        if len(batch) >= _WRITE_EVERY:
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
        if len(batch) >= _WRITE_EVERY:
            write("".join(batch))
            batch.clear()
    write("".join(batch) + ("[]\n" if sep == "[" else "\n]\n"))


def _json_lines(jobs: Iterator[Job]) -> None:
    """One JSON object a line, each a job as `--json` shows it: what a program reads as it comes."""
    write = sys.stdout.write
    dumps = json.JSONEncoder().encode
    batch: list[str] = []
    for job in jobs:
        batch.append(dumps(job.public()) + "\n")
        if len(batch) >= _WRITE_EVERY:
            write("".join(batch))
            batch.clear()
    write("".join(batch))


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
        if args.jsonl:
            _json_lines(q.iter_jobs(args.state))
        elif args.json:
            _json(q.iter_jobs(args.state))
        else:
            _table(q, args.state, fleet=_is_fleet(q))
    return EXIT_OK


def _is_fleet(q: JobQueue) -> bool:
    """A queue several runners share (PostgreSQL), whose jobs say which runner holds them."""
    from getm_tui.queue.sqlite import Queue

    return not isinstance(q, Queue)


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


def _expiry_field(job: Job) -> list[tuple[str, str]]:
    """`url expires:` for a signed URL that says when (never the query itself), with a warning when the
    job will not finish before it at its average speed since it started."""
    from getm_tui.engine.expiry import deadline_note

    rate = None
    if job.state == "active" and job.started:
        rate = job.bytes_done / max(1e-3, time.time() - job.started)
    remaining = None if job.size is None else max(0, job.size - job.bytes_done)
    note = deadline_note(job.url, remaining, rate)
    if note is None:
        return []
    text, urgent = note
    if urgent:
        warn(f"job {job.id}: signed URL expires {text}")
    return [("url expires", text)]


@verb
def cmd_show(args: argparse.Namespace) -> int:
    _text_out()
    with _open(args) as q:
        job = q.check_ids([args.id])[0]
        events = q.events(job.id)
    pub = job.public()
    if args.json:
        from getm_tui.engine.expiry import expires_at

        pub["url_expires"] = expires_at(job.url)
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
        *_expiry_field(job),
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
        *([("runner", f"{job.runner.host} pid {job.runner.pid}")] if job.runner else []),
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

    if getattr(args, "url", None) is not None:
        return _new_url(args)
    with _open(args) as q:
        outcomes = q.apply(TRANSITIONS[args.verb], args.ids)
    for outcome in outcomes:
        if outcome.message:
            warn(outcome.message)
    return EXIT_OK


cmd_pause = cmd_resume = cmd_retry = cmd_move


def _new_url(args: argparse.Namespace) -> int:
    """`retry ID --url NEW_URL`: the job is queued again under the new URL (states.NEW_URL), and resumes
    from its parts when the new URL names the same object."""
    from getm_tui.engine.errors import UsageError
    from getm_tui.engine.urls import validate

    if len(args.ids) != 1:
        raise Usage("--url gives one job a new URL: name one ID")
    try:
        url = validate(args.url)
    except UsageError as e:
        raise Usage(str(e)) from None
    with _open(args) as q:
        outcome = q.set_url(args.ids[0], url)
    if outcome.message:
        warn(outcome.message)
    return EXIT_OK


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
