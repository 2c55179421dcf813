"""`getm-tui ls` and `getm-tui show`: the queue and one job, for people (a table that streams) and for
machines (JSON, JSON lines)."""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from getm_tui import humanize
from getm_tui.cli.common import EXIT_OK, warn
from getm_tui.cli.verbs import clean, is_fleet, open_queue_of, verb, when

if TYPE_CHECKING:
    from getm_tui.queue.interface import JobQueue
    from getm_tui.queue.records import Job


# -- ls and show --------------------------------------------------------------------------------------

_WIDTH_SAMPLE = 1000  # column widths come from the first rows, so a huge queue streams
_WRITE_EVERY = 2000  # jobs per write: a reader sees the first lines at once, and a file fills quickly
_NAME_MAX, _ERROR_MAX = 48, 60
# Widest a cell gets when rows beyond the sample may be wider: state, size ("1023.9 KiB"), done, verdict.
_STREAM_WIDTHS = {1: 8, 3: _NAME_MAX, 4: 10, 5: 10, 6: 10}


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _done(state: str, size: int | None, bytes_done: int) -> str:
    if state == "done":
        return "100%"
    if size:
        return f"{min(100, 100 * bytes_done // size)}%"
    return humanize.size(bytes_done) if bytes_done else "-"


def _speed(job: Job) -> str:
    """A running job's recent speed, as the runner holding it last wrote it."""
    return humanize.rate(job.rate) if job.rate is not None else "-"


def _holder(job: Job) -> str:
    """The fleet's runner holding a running job, as `host:pid`."""
    return f"{clean(job.runner.host)}:{job.runner.pid}" if job.runner else "-"


Cells = Callable[..., tuple[str, ...]]


def _cells_of_listed() -> Cells:
    """What makes a table row's cells from what the queue lists of a job (records.Listed). Made when a
    table is, so that only `ls` loads the queue's records."""
    from getm_tui.queue.records import display_name_of

    def cells(
        jid: int,
        url: str,
        name: str | None,
        path: str | None,
        state: str,
        priority: int,
        size: int | None,
        bytes_done: int,
        verdict: str | None,
        error: str | None,
    ) -> tuple[str, ...]:
        shown = display_name_of(url, name, path)
        if not shown.isprintable() or len(shown) > _NAME_MAX:
            shown = _clip(clean(shown), _NAME_MAX)
        if error:
            error = error.strip().split("\n", 1)[0]
            if not error.isprintable() or len(error) > _ERROR_MAX:
                error = _clip(clean(error), _ERROR_MAX)
        return (
            str(jid),
            state,
            str(priority),
            shown,
            humanize.size(size) if size is not None else "?",
            _done(state, size, bytes_done),
            verdict or "-",
            error or "",
        )

    return cells


def _fleet_cells(cells: Cells, job: Job) -> tuple[str, ...]:
    """A fleet's row: the job's cells, with its speed and runner before the last."""
    row = cells(
        job.id, job.url, job.name, job.path, str.__str__(job.state),  # the stored text, not the enum's
        job.priority, job.size, job.bytes_done, job.verdict, job.error,
    )  # fmt: skip
    return (*row[:-1], _speed(job), _holder(job), row[-1])


_HEADER = ("ID", "STATE", "PRI", "NAME", "SIZE", "DONE", "VERDICT", "ERROR")
_RIGHT = (True, False, True, False, True, True, False, False)
# A fleet's table has two more columns, before the last: each running job's recent speed (as its runner
# wrote it with its progress) and the runner holding it.
_FLEET_HEADER = (*_HEADER[:-1], "SPEED", "RUNNER", _HEADER[-1])
_FLEET_RIGHT = (*_RIGHT[:-1], True, False, _RIGHT[-1])
_SPEED_WIDTH = 10
_RUNNER_WIDTH = 32


def _table(q: JobQueue, states: Sequence[str] | None, fleet: bool = False) -> None:
    write = sys.stdout.write
    header, right = (_FLEET_HEADER, _FLEET_RIGHT) if fleet else (_HEADER, _RIGHT)
    cells = _cells_of_listed()
    rows: Iterator[tuple[str, ...]]
    if fleet:
        rows = map(functools.partial(_fleet_cells, cells), q.iter_jobs(states))
    else:
        rows = itertools.starmap(cells, q.listing(states))
    first = list(itertools.islice(rows, _WIDTH_SAMPLE))
    widths = [max([len(h), *(len(row[i]) for row in first)]) for i, h in enumerate(header)]
    if len(first) >= _WIDTH_SAMPLE:  # more rows may follow: make room for what they can hold
        top_id, low, high = q.extent()
        widths[0] = max(widths[0], len(str(top_id)))
        widths[2] = max(widths[2], len(str(low)), len(str(high)))
        for i, w in _STREAM_WIDTHS.items():
            widths[i] = max(widths[i], w)
        if fleet:
            widths[-3] = max(widths[-3], _SPEED_WIDTH)
            widths[-2] = max(widths[-2], _RUNNER_WIDTH)
    widths[-1] = 0  # the last column is not padded
    fmt = "  ".join(
        f"{{{i}:{'>' if r else '<'}{w}}}" for i, (w, r) in enumerate(zip(widths, right, strict=True))
    ).format

    def lines(batch: Iterable[Sequence[str]]) -> str:
        return "".join([fmt(*row).rstrip() + "\n" for row in batch])

    write(lines([header, *first]))
    while batch := list(itertools.islice(rows, _WRITE_EVERY)):
        write(lines(batch))


def _stream(pieces: Iterable[str]) -> bool:
    """Write a listing's pieces: the first at once, flushed (a reader has it while the rest is read), then
    _WRITE_EVERY at a time. Whether there were any."""
    out = sys.stdout
    it = iter(pieces)
    first = next(it, None)
    if first is None:
        return False
    out.write(first)
    out.flush()
    while batch := list(itertools.islice(it, _WRITE_EVERY)):
        out.write("".join(batch))
    return True


def _json(jobs: Iterator[Job]) -> None:
    dumps = json.JSONEncoder().encode  # ASCII: valid whatever the output's encoding
    items = (("[\n" if n == 0 else ",\n") + dumps(job.public()) for n, job in enumerate(jobs))
    sys.stdout.write("\n]\n" if _stream(items) else "[]\n")


def _json_lines(jobs: Iterator[Job]) -> None:
    """One JSON object a line, each a job as `--json` shows it: what a program reads as it comes."""
    dumps = json.JSONEncoder().encode
    _stream(dumps(job.public()) + "\n" for job in jobs)


def _text_out() -> None:
    """Names from servers may not fit the terminal's encoding: show '?' rather than fail."""
    try:
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass


@verb
def cmd_ls(args: argparse.Namespace) -> int:
    _text_out()
    # The file is checked beside the listing, not before its first line; leaving the block waits for the
    # verdict, once what was listed is out.
    with open_queue_of(args, check="later") as q:
        if args.jsonl:
            _json_lines(q.iter_jobs(args.state))
        elif args.json:
            _json(q.iter_jobs(args.state))
        else:
            _table(q, args.state, fleet=is_fleet(q))
        sys.stdout.flush()
    return EXIT_OK


def _value(v: Any) -> str:
    if v is None or v == "" or v == [] or v == {}:
        return "-"
    if isinstance(v, (dict, list)):
        return clean(json.dumps(v, ensure_ascii=False))
    return clean(v)


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
    with open_queue_of(args) as q:
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
        ("bytes done", f"{job.bytes_done} ({_done(job.state, job.size, job.bytes_done)})"),
        ("checksums", ", ".join(job.checksums)),
        ("verdict", job.verdict),
        ("attempts", job.attempts),
        ("error", job.error),
        *([("runner", f"{job.runner.host} pid {job.runner.pid}")] if job.runner else []),
        *([("speed", _speed(job))] if job.rate is not None else []),
        ("created", when(job.created)),
        ("updated", when(job.updated)),
        ("started", when(job.started)),
        ("finished", when(job.finished)),
    ]
    fields += [(f"info.{k}", v) for k, v in sorted(job.info.items())]
    out = [f"{k + ':':<12} {_value(v)}\n" for k, v in fields]
    out.append("integrity:" + ("" if job.integrity else " -") + "\n")
    for item in job.integrity:
        if isinstance(item, dict):
            pairs = list(item.items())
            out += [
                f"  {'- ' if i == 0 else '  '}{clean(k)}: {_value(v)}\n" for i, (k, v) in enumerate(pairs)
            ]
        else:
            out.append(f"  - {_value(item)}\n")
    out.append("events:" + ("" if events else " -") + "\n")
    out += [f"  {when(at)}  {clean(kind)}: {clean(message)}\n" for at, kind, message in events]
    sys.stdout.write("".join(out))
    return EXIT_OK
