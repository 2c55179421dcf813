"""Queueing a remote tree: the objects under an s3:// or gs:// prefix (and, with the same function, the
files of an FTP or SFTP tree that `mirror` lists), one job per file, under one local directory.

A listing is consumed as it comes and queued in batches, so a prefix of millions of keys is never held in
memory. Each listed name goes through `local_path`, the one rule that refuses names that would land outside
the directory (a refusal is one line naming the key; nothing is written for it). A file already present with
the listed size and checksum is skipped, so running the same `add` again queues nothing new, as
`aws s3 sync` and `gsutil rsync` behave.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from getm_tui.cli.common import CONTROLS, EXIT_FAILED, EXIT_OK, settings_from, warn
from getm_tui.engine.checksum import Verifier, verdict
from getm_tui.engine.sources.listing import RemoteEntry, UnsafeName, local_path

if TYPE_CHECKING:
    from getm_tui.queue.interface import JobQueue
    from getm_tui.queue.records import JobSpec

BATCH = 500  # jobs per queue transaction
# C0/C1 controls become "?" in what is shown: a key is someone else's text.
_READ = 8 * 1024 * 1024


@dataclass
class TreeCounts:
    """What queueing a tree came to."""

    queued: int = 0
    skipped: int = 0  # present with the same size and checksum
    filtered: int = 0  # left out by --include / --exclude
    refused: int = 0  # names that would escape the directory

    def describe(self) -> str:
        text = f"queued {self.queued}, skipped {self.skipped} already present"
        if self.filtered:
            text += f", {self.filtered} filtered out"
        if self.refused:
            text += f", refused {self.refused} unsafe names"
        return text


@dataclass(frozen=True)
class Filters:
    """--include / --exclude globs over the listed relative path (`*` matches across `/`, as in
    `aws s3 sync`). With includes, a path must match one; it must match no exclude."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def admit(self, path: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(path, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatchcase(path, g) for g in self.exclude)


def is_current(path: str, entry: RemoteEntry) -> bool:
    """Whether the file at `path` already holds the listed object: the same size and, where the listing
    gives a checksum, the same checksum (read and computed here; a multipart S3 ETag is tested against the
    part layouts that could have made it)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return False
    if entry.size is None or size != entry.size:
        return False
    if not entry.checksums:
        return True
    verifier = Verifier(entry.checksums, size)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_READ):
                verifier.update(chunk)
    except OSError:
        return False
    return verdict(verifier.finish()) == "verified"


def queue_tree(
    q: JobQueue,
    entries: Iterable[RemoteEntry],
    directory: str,
    filters: Filters,
    spec: dict[str, Any],
    refused: Callable[[UnsafeName], None],
    added: Callable[[list[int]], None],
    current: Callable[[str, RemoteEntry], bool] = is_current,
) -> TreeCounts:
    """Queue one job per listed entry under `directory`, `BATCH` at a time; `spec` holds what every job
    shares (priority, concurrency, info). Refused names go to `refused`, the ids of each batch to `added`."""
    counts = TreeCounts()
    batch: list[JobSpec] = []

    def flush() -> None:
        if batch:
            added(q.add_many(batch))
            counts.queued += len(batch)
            batch.clear()

    for entry in entries:
        if not filters.admit(entry.path):
            counts.filtered += 1
            continue
        try:
            target = local_path(directory, entry.path)
        except UnsafeName as e:
            counts.refused += 1
            refused(e)
            continue
        if current(target, entry):
            counts.skipped += 1
            continue
        folder, name = os.path.split(target)
        os.makedirs(folder, exist_ok=True)
        batch.append({**spec, "url": entry.url, "directory": folder, "name": name})  # type: ignore[typeddict-item]
        if len(batch) >= BATCH:
            flush()
    flush()
    return counts


def is_prefix(url: str, recursive: bool) -> bool:
    """Whether a validated URL names a bucket prefix to list: s3:// or gs:// with a trailing slash, no
    key at all, or --recursive."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("s3", "gs"):
        return False
    return recursive or rest.endswith("/") or "/" not in rest


def add_prefixes(
    args: argparse.Namespace, q: JobQueue, prefixes: Sequence[str], directory: str, shared: dict[str, Any]
) -> int:
    """List each prefix and queue its objects; one line per prefix on stderr with what came of it."""
    from getm_tui.engine.errors import EngineError
    from getm_tui.engine.sources import source_for

    settings = settings_from(args)
    access = settings.access(anonymous=bool(getattr(args, "anonymous", False)))
    filters = Filters(tuple(args.include or ()), tuple(args.exclude or ()))

    def added(ids: list[int]) -> None:
        sys.stdout.write("".join(f"{i}\n" for i in ids))

    def refused(e: UnsafeName) -> None:
        warn(str(e).translate(CONTROLS))

    code = EXIT_OK
    for url in prefixes:
        counts = TreeCounts()
        try:
            listing = source_for(url).listing(url, settings.http(), access)
            counts = queue_tree(q, listing, directory, filters, shared, refused, added)
        except EngineError as e:
            warn(f"{e} (listing {url} stopped; what was listed before it is queued)")
            code = EXIT_FAILED
        sys.stdout.flush()
        warn(f"{url}: {counts.describe()}")
    return code
