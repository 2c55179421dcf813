"""Queueing a remote tree: the objects under an s3:// or gs:// prefix (and, with the same function, the
files of an FTP or SFTP tree), one job per file, under one local directory. Here, beside the queue, so
that both front ends (`getm-tui add` and the app's add dialog) queue a prefix the same way.

A listing is consumed as it comes and queued in batches, so a prefix of millions of keys is never held in
memory. Each listed name goes through `local_path`, the one rule that refuses names that would land outside
the directory (a refusal is one line naming the key; nothing is written for it). A file already present with
the listed size and checksum is skipped, so queueing the same prefix again queues nothing new, as
`aws s3 sync` and `gsutil rsync` behave.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from getm_tui.engine.checksum import Verifier, verdict
from getm_tui.engine.sources.listing import RemoteEntry, UnsafeName, local_path

if TYPE_CHECKING:
    from getm_tui.engine.sources.base import Access
    from getm_tui.engine.sources.http_session import HTTPSettings
    from getm_tui.queue.interface import JobQueue
    from getm_tui.queue.records import JobSpec

BATCH = 500  # jobs per queue transaction
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
    """Whether a validated URL names a tree to list: an s3:// or gs:// prefix (a trailing slash, no key at
    all, or --recursive), an FTP or SFTP directory (a trailing slash or --recursive), an HTTP index page
    (--recursive only: a URL ending in a slash is as often a page of its own)."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme in ("s3", "gs"):
        return recursive or rest.endswith("/") or "/" not in rest
    if scheme in ("ftp", "ftps", "sftp"):
        return recursive or rest.endswith("/")
    return recursive and scheme in ("http", "https")


def queue_prefix(
    q: JobQueue,
    url: str,
    settings: HTTPSettings,
    access: Access,
    directory: str,
    filters: Filters,
    spec: dict[str, Any],
    refused: Callable[[UnsafeName], None],
    added: Callable[[list[int]], None],
) -> TreeCounts:
    """List the prefix `url` and queue its objects (queue_tree). An EngineError of the listing (a refusal,
    an unreadable page) propagates; what was listed before it is queued."""
    from getm_tui.engine.sources import source_for

    return queue_tree(
        q, source_for(url).listing(url, settings, access), directory, filters, spec, refused, added
    )
