"""The engine's public API: download() to a file, urlopen() and iter_content() as streams.

`concurrency` means what it means in getm: None reads in the calling process, 1 streams one keep-alive
request in one background process, N > 1 runs up to N range requests at once in background processes.
Files smaller than one part are read straight from the probe's response in the calling process whatever
the concurrency: one request, no processes, which is what a queue of many small files needs.

A download probes the URL, claims its target name (target.py), fetches in this process (inline.py) or
through fetch workers (parallel.py), verifies, and commits; a remote file that changes under it starts it
over, and its resume record (control.py) lets a later call fetch only what is missing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from getm_tui.engine import control, retry
from getm_tui.engine.archive import check_for
from getm_tui.engine.checksum import (
    ChecksumArg,
    Expected,
    expected_from,
    mismatch_message,
    verdict,
    verifier_for,
)
from getm_tui.engine.crc import whole_crc
from getm_tui.engine.errors import ArchiveDamaged, DownloadError, IntegrityError, NoSpaceError, RemoteChanged
from getm_tui.engine.files import DEFAULT_NAME, control_path, part_path
from getm_tui.engine.inline import INLINE_LIMIT, READ_CHUNK, fetch_inline
from getm_tui.engine.options import UNSET, Live, NotGiven, Options, with_keywords
from getm_tui.engine.parallel import fetch_parallel
from getm_tui.engine.plan import Part
from getm_tui.engine.politeness import Lease
from getm_tui.engine.progress import Progress
from getm_tui.engine.reader import Reader
from getm_tui.engine.result import Result
from getm_tui.engine.sink import FileSink
from getm_tui.engine.sources import file, source_for
from getm_tui.engine.sources.http import Probe
from getm_tui.engine.sources.http_session import Reply, Session, make_session
from getm_tui.engine.target import (
    choose_target,
    commit,
    finished_before,
    preallocate,
    remove,
    split_target,
    sync_directory,
)
from getm_tui.engine.urls import validate
from getm_tui.engine.workers import WorkerPool

__all__ = ["Options", "Reader", "Result", "download", "iter_content", "urlopen"]

log = logging.getLogger(__name__)


def download(
    url: str,
    path: str | None = None,
    *,
    concurrency: int | None | NotGiven = UNSET,
    checksum: ChecksumArg = None,
    overwrite: bool | NotGiven = UNSET,
    options: Options | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    pool: WorkerPool | None = None,
    session: Session | None = None,
    store: control.ResumeStore | None = None,
    on_probe: Callable[[Probe, str], None] | None = None,
    live: Live | None = None,
) -> Result:
    """Download `url` to `path` (a file, or an existing directory; default the current directory).

    `concurrency`, `overwrite` and `live`, when given, replace what `options` hold (default Options()).

    Raises UsageError for bad input, Cancelled when `cancel` is set (progress is kept for a resume),
    IntegrityError on a checksum mismatch, or ArchiveDamaged when no checksum is known and the file, named
    as an archive, does not decompress (nothing reaches the final name), and DownloadError otherwise.

    `store` keeps the resume record of this one download (by default `NAME.getm-resume` beside the file).
    A store that keeps what its `clear` is asked to drop until the caller has recorded the end (as the
    supervisor's does) also turns a kill between the rename and that bookkeeping into a finished result
    on the next call, not a second download.
    """
    opts = with_keywords(options, concurrency=concurrency, overwrite=overwrite, live=live)
    url = validate(url)
    expected_user = expected_from(checksum)
    directory, fixed_name = split_target(path)
    if url.lower().startswith("file:"):
        return file.copy(
            url,
            directory,
            fixed_name,
            opts.overwrite,
            expected_user,
            opts.check_archives,
            opts.sync == "here",
        )
    if store is not None:
        finished = finished_before(store.load(), url, directory, fixed_name)
        if finished is not None:
            return finished
    started = time.monotonic()
    own_session = session is None
    if session is None:
        session = make_session(opts.http)
    own_pool = None
    if pool is None and opts.concurrency:
        own_pool = pool = WorkerPool(opts.http)  # grown once we know the plan
        own_pool.single_use = True
    source = source_for(url)
    lease = Lease(opts.budget, url)  # the probe's connection, read on for a small file
    try:
        restarts = 0
        target: str | None = None
        created: int | None = None  # the partial file choose_target created, open until _attempt takes it
        while True:
            probe, resp = retry.with_retries(
                lambda: lease.call(lambda: source.probe(session, url, opts.http, opts.access), cancel),
                opts.retries,
                opts.retry_base,
                cancel,
                opts.retry_cap,
            )
            if target is None:
                target, created = choose_target(
                    directory, fixed_name or probe.filename or DEFAULT_NAME, url, opts.overwrite, store
                )
                if on_probe:
                    on_probe(probe, target)
            st: control.ResumeStore
            own_record: control.ControlFile | None = None
            if store is None:
                st = own_record = control.ControlFile(control_path(target))
            else:
                st = store
            try:
                opened, created = created, None
                result = _attempt(
                    url,
                    target,
                    opened,
                    probe,
                    resp,
                    lease,
                    session,
                    st,
                    expected_user,
                    opts,
                    pool,
                    progress,
                    cancel,
                )
            except RemoteChanged as e:
                restarts += 1
                st.save(control.claim(url, target))  # nothing kept, but the partial file stays ours
                if restarts > opts.max_restarts:
                    raise DownloadError(
                        f"the remote file keeps changing ({e}); gave up after {restarts} restarts"
                    ) from None
                log.warning("%s: starting over", e)
                continue
            finally:
                resp.close()
                lease.end()
                if own_record is not None:
                    own_record.close()
            result.restarts = restarts
            result.elapsed = time.monotonic() - started
            return result
    finally:
        lease.end()
        if created is not None:
            os.close(created)
        if own_pool is not None:
            own_pool.close()
        if own_session:
            session.close()


def _attempt(
    url: str,
    target: str,
    opened: int | None,
    probe: Probe,
    resp: Reply,
    lease: Lease,
    session: Session,
    store: control.ResumeStore,
    expected_user: list[Expected],
    opts: Options,
    pool: WorkerPool | None,
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
) -> Result:
    """One attempt at the file. `opened`: its partial file, just created empty (the claim before it kept
    nothing to resume), which the attempt takes and closes; None: open it here."""
    partfile = part_path(target)
    parts = None if opened is not None else control.restore(store.load(), url, probe.size, probe.validator)
    if parts is not None and not probe.ranges:
        parts = None
    fresh = not parts  # the partial file starts empty
    if opened is not None:
        fd = opened
    else:
        fd = os.open(partfile, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if fresh else 0), 0o644)
    sink = FileSink(partfile, fd)
    resumed = sum(p.kept for p in parts) if parts else 0
    if resumed:
        log.info("resuming %s: %d bytes already on disk", os.path.basename(target), resumed)
    try:
        if probe.size:
            preallocate(fd, probe.size, partfile, empty=fresh)
        archive = check_for(target) if opts.check_archives else None
        verifier = verifier_for(expected_user, probe.expected, probe.size, archive)

        def save(parts: list[Part]) -> None:
            store.save(control.record(url, probe.size, probe.validator, parts, target))

        small = probe.size is not None and probe.size <= INLINE_LIMIT
        if pool is None or opts.concurrency is None or (small and not parts):
            fetched = fetch_inline(session, probe, resp, sink, verifier, parts, opts, progress, cancel, save)
        else:
            resp.close()
            lease.end()  # the parts ask the budget for their own connections
            fetched = fetch_parallel(pool, probe, parts, sink, verifier, opts, progress, cancel, save)
        parts = fetched.parts
        crc = whole_crc(parts)
        outcomes = verifier.finish(crc)
        checked = verdict(outcomes)
        size = sum(p.done for p in parts)
        damaged: IntegrityError | None = None
        if checked == "mismatch":
            damaged = IntegrityError(mismatch_message(os.path.basename(target), outcomes))
        else:
            if not fresh or probe.size not in (None, size):
                # What an earlier attempt or the preallocation left beyond the bytes fetched goes (a
                # file that started empty and was reserved at its size has nothing there).
                os.ftruncate(fd, size)
            # A zip is read back here, whole and at its final size; the others were tested as they came.
            why = verifier.archive.finish(partfile) if verifier.archive is not None else None
            if why is not None:
                damaged = ArchiveDamaged(f"archive check failed: {os.path.basename(target)}: {why}")
        if damaged is not None:
            os.close(fd)
            fd = -1
            remove(partfile)
            store.clear()
            raise damaged
        here = opts.sync == "here"
        if here:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        rec = control.record(url, probe.size, probe.validator, parts, target)
        done = control.finished(rec, size, checked, f"{crc:08x}", outcomes, synced=here)
        pending: dict[str, Any] | None = None
        if opts.commit == "caller":
            final, pending = target, done
        else:
            store.save(done)
            final = commit(partfile, target, opts.overwrite)
            if here:
                sync_directory(os.path.dirname(final))
            store.clear()
        return Result(
            path=final,
            size=size,
            verdict=checked,
            outcomes=outcomes,
            crc32c=f"{crc:08x}",
            elapsed=0.0,
            resumed=resumed,
            connections=fetched.connections,
            retries=fetched.retries,
            restarts=0,
            probe=probe,
            archive=verifier.archive.kind if verifier.archive is not None else "",
            pending=pending,
        )
    except NoSpaceError:
        # Give the space back when none of it can be resumed (nothing recorded, or no known size).
        if control.restore(store.load(), url, probe.size, probe.validator) is None:
            if fd >= 0:
                os.close(fd)
                fd = -1
            remove(partfile)
            store.clear()
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def urlopen(
    url: str,
    concurrency: int | None | NotGiven = UNSET,
    checksum: ChecksumArg = None,
    options: Options | None = None,
) -> Reader:
    """A readable stream of `url`; see Reader."""
    return Reader(url, concurrency, checksum, options)


def iter_content(
    url: str, chunk_size: int = READ_CHUNK, concurrency: int | None | NotGiven = UNSET
) -> Iterator[memoryview]:
    """Yield the body of `url` in order; each view is released for the caller when the next is asked for."""
    with Reader(url, concurrency) as reader:
        while True:
            view = reader.read(chunk_size)
            if not len(view):
                return
            try:
                yield view
            finally:
                view.release()
