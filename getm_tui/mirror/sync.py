"""One pass of a mirror: list the source, select, read the published sums, queue what is new or changed,
and (with delete) remove what is gone.

The selected part of the listing is held for the pass (a path and a few facts per file): the sums files
of a directory must be read before its files are queued, and a listing (an S3 prefix in key order, say)
may name them after the data; --delete needs the whole listed set too. A listing that fails midway
queues nothing and removes nothing: half a listing would delete what it did not reach.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from getm_tui.config import Settings
from getm_tui.engine.errors import UsageError
from getm_tui.engine.sources.listing import RemoteEntry, UnsafeName, local_path
from getm_tui.mirror import compare, prune
from getm_tui.mirror.selection import Selection
from getm_tui.mirror.spec import MirrorSpec
from getm_tui.mirror.sums import is_sums_file, read_published
from getm_tui.queue.interface import JobQueue

if TYPE_CHECKING:
    from getm_tui.queue.records import JobSpec

BATCH = 500  # jobs per queue transaction


@dataclass
class PassResult:
    """What one pass came to."""

    queued: int = 0
    current: int = 0
    unfinished: int = 0  # already queued by an earlier pass, not finished yet
    filtered: int = 0
    refused: int = 0
    checksummed: int = 0  # queued with a checksum from a sums file
    removed: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    def describe(self, dry_run: bool = False) -> str:
        verb = "would queue" if dry_run else "queued"
        text = f"{verb} {self.queued}, {self.current} already current"
        if self.unfinished:
            text += f", {self.unfinished} already queued"
        if self.checksummed:
            text += f", {self.checksummed} with published checksums"
        if self.filtered:
            text += f", {self.filtered} not selected"
        if self.refused:
            text += f", refused {self.refused} unsafe names"
        if self.removed:
            text += f", {'would remove' if dry_run else 'removed'} {len(self.removed)}"
        return text


def run_pass(
    q: JobQueue, spec: MirrorSpec, settings: Settings, say: Callable[[str], None], dry_run: bool = False
) -> PassResult:
    """One pass of the mirror `spec` into `q`. `say` takes the lines about single files (a refused name,
    an unreadable sums file, a removed file). The listing's errors (EngineError) propagate, with nothing
    queued or removed."""
    from getm_tui.engine.sources import source_for

    result = PassResult()
    selection = Selection(spec)
    access = settings.access(anonymous=spec.anonymous)
    destination = os.path.abspath(spec.destination)
    found: list[tuple[str, RemoteEntry]] = []
    sums: list[RemoteEntry] = []
    refused: list[str] = []
    try:
        source = source_for(spec.source)
    except KeyError:
        raise UsageError(f"cannot list {spec.source.split(':', 1)[0]}:// URLs") from None
    for entry in source.listing(spec.source, settings.http(), access):
        is_sums = is_sums_file(entry.path)
        if not selection.admits(entry.path, sums=is_sums):
            result.filtered += 1
            continue
        try:
            target = local_path(destination, entry.path)
        except UnsafeName as e:
            result.refused += 1
            refused.append(entry.path)
            say(str(e))
            continue
        found.append((target, entry))
        if is_sums:
            sums.append(entry)
    published = read_published(sums, settings, access, say)
    unfinished = compare.unfinished_targets(q, destination)
    found = compare.complete(found, settings.http())
    batch: list[JobSpec] = []

    def flush() -> None:
        if batch and not dry_run:
            result.ids.extend(q.add_many(batch))
        batch.clear()

    for target, entry in found:
        if target in unfinished:
            result.unfinished += 1
        elif compare.is_current(target, entry):
            result.current += 1
        else:
            batch.append(_job(spec, target, entry, published.for_path(entry.path), result, dry_run))
            result.queued += 1
            if len(batch) >= BATCH:
                flush()
    flush()
    if spec.delete:
        listed = {target for target, _ in found}
        doomed = prune.gone(destination, selection, listed, refused, unfinished)
        result.removed = doomed if dry_run else prune.remove(destination, doomed, say)
    return result


def _job(
    spec: MirrorSpec, target: str, entry: RemoteEntry, published: list[Any], result: PassResult, dry_run: bool
) -> JobSpec:
    """The job that fetches `entry` to `target`: it replaces an older copy, and its file takes the remote
    modification time when it finishes (compare.stamp)."""
    folder, name = os.path.split(target)
    if not dry_run:
        os.makedirs(folder, exist_ok=True)
    info: dict[str, Any] = {"overwrite": True, "mirror": {"mtime": entry.modified}}
    if spec.anonymous:
        info["anonymous"] = True
    if spec.no_sync:
        info["no_sync"] = True
    job: JobSpec = {
        "url": entry.url,
        "directory": folder,
        "name": name,
        "priority": spec.priority,
        "concurrency": spec.concurrency,
        "info": info,
    }
    # The listing's own checksums (an S3 ETag) are the object's: its probe advertises them to the job.
    if published:
        result.checksummed += 1
        job["checksums"] = [f"{e.algorithm}:{e.value}" for e in published]
        info["checksums_from"] = published[0].source  # named by the line a mismatch gives
    return job
