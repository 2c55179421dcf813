"""`getm-tui add`: URLs (or a list of them, streamed) become queued jobs; a bucket prefix is listed
into jobs by tree.py; a sums file gives the URLs it lists their checksums.

Every URL is checked before the queue changes: a bad one ends in one line naming it, and nothing is added.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from getm_tui.cli.common import EXIT_OK, warn
from getm_tui.cli.verbs import Usage, open_queue_of, verb

if TYPE_CHECKING:
    from getm_tui.cli.add_input import Item
    from getm_tui.queue.records import JobSpec


# -- add ----------------------------------------------------------------------------------------------


def _one_url_options(args: argparse.Namespace, entries: Iterator[Item]) -> Iterator[Item]:
    """The entries, checked against what needs exactly one URL (-o, --checksum) once the first two are
    read (here, before anything else is checked); the whole input is read only to say how many there were.
    With either option, no entry is a block of plain lines."""
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
        url, checksums, where = first[0]  # an entry: blocks come only when neither option is given
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


def _job_info(args: argparse.Namespace) -> dict[str, Any] | None:
    """What a job records of how it is fetched and kept. Per job, like curl -k on one command line: the
    runner verifies every other job, reads buckets with credentials and syncs files for every other job."""
    info = {
        "insecure": bool(getattr(args, "insecure", False)),
        "anonymous": bool(getattr(args, "anonymous", False)),
        "no_sync": bool(getattr(args, "no_sync", False)),
    }
    return {k: True for k, v in info.items() if v} or None


@dataclass
class _Adding:
    """What one `add` learns while its input streams past: what every job shares (the directory, checked
    once), the prefixes to list once the plain URLs are queued, and how many URLs a sums file gave
    checksums to."""

    shared: dict[str, Any] = field(default_factory=dict)
    prefixes: list[str] = field(default_factory=list)
    listed: int = 0
    urls: int = 0


def _specs(args: argparse.Namespace, adding: _Adding) -> Iterator[JobSpec]:
    """The jobs to add, checked one by one as the input is read (the queue's transaction takes them as
    they come, and a bad one rolls back all). What every job shares is worked out once; a bucket prefix
    is set aside in `adding` to be listed after."""
    from getm_tui.cli import tree
    from getm_tui.cli.add_input import URLCheck, read_entries
    from getm_tui.engine.checksum import expected_from
    from getm_tui.engine.checksum_files import read_sums_file
    from getm_tui.engine.errors import UsageError

    validate = URLCheck()
    recursive = bool(getattr(args, "recursive", False))
    # Plain lines of the list are taken a block at a time unless something may apply to one URL.
    per_url = args.output is not None or args.checksum or args.checksums_file or recursive
    entries = _one_url_options(args, read_entries(args.urls, args.input, None if per_url else validate.plain))
    try:
        sums = [read_sums_file(path) for path in args.checksums_file or ()]
    except UsageError as e:
        raise Usage(str(e)) from None
    shared = adding.shared = {
        "directory": _directory(args),
        "name": _output_name(args.output) if args.output is not None else None,
        "priority": args.priority,
        "concurrency": args.concurrency,
        "info": _job_info(args),
    }
    for entry in entries:
        if isinstance(entry, list):  # a block of plain lines: URLs to queue as they are, with no checksum
            adding.urls += len(entry)
            yield from ({"url": url, **shared} for url in entry)  # type: ignore[misc]
            continue
        url, checksums, where = entry
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
            if {x.source for x in expected} != {"user"} and len({x.source for x in expected}) == 1:
                # all from one sums file: a mismatch names it rather than "user"
                spec["info"] = {**(shared["info"] or {}), "checksums_from": expected[0].source}
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
    with open_queue_of(args) as q:
        ids = q.add_many(itertools.chain((first,), specs)) if first is not None else []
        for start in range(0, len(ids), _IDS_BLOCK):
            sys.stdout.write("".join(f"{i}\n" for i in ids[start : start + _IDS_BLOCK]))
        code = EXIT_OK
        if adding.prefixes:
            shared = {k: adding.shared[k] for k in ("priority", "concurrency", "info")}
            code = tree.add_prefixes(args, q, adding.prefixes, adding.shared["directory"], shared)
    if insecure and ids:
        shown = ", ".join(map(str, ids)) if len(ids) <= 10 else f"{ids[0]}-{ids[-1]}"
        warn(f"warning: TLS certificate verification will be off for job(s) {shown} (--insecure)")
    if insecure and adding.prefixes:
        warn("warning: TLS certificate verification will be off for the listed objects' jobs (--insecure)")
    return code
