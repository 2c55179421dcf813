"""Downloads to files and readable streams: probe, plan, fetch, verify, commit, resume.

`concurrency` means what it means in getm: None reads in the calling process, 1 streams one keep-alive
request in one background process, N > 1 runs up to N range requests at once in background processes.
Files smaller than one part are read straight from the probe's response in the calling process whatever
the concurrency: one request, no processes, which is what a queue of many small files needs.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from getm_tui.engine import checksum, control, plan, retry, shm
from getm_tui.engine.checksum import ChecksumArg, expected_from
from getm_tui.engine.crc import crc32c, whole_crc
from getm_tui.engine.errors import (
    Cancelled,
    DownloadError,
    IntegrityError,
    NoSpaceError,
    RemoteChanged,
    Retryable,
    UsageError,
)
from getm_tui.engine.files import DEFAULT_NAME, control_path, free_name, part_path
from getm_tui.engine.sources import http, http_session
from getm_tui.engine.transfer import FileSink, Progress, Transfer
from getm_tui.engine.urls import file_path, redact, validate
from getm_tui.engine.workers import WorkerPool

log = logging.getLogger(__name__)

INLINE_LIMIT = plan.MIN_PART
READ_CHUNK = 1024 * 1024
STREAM_SLOT = 4 * 1024 * 1024
STREAM_SLOTS = 4
PROGRESS_INTERVAL = 0.1


@dataclass
class Options:
    """Knobs of one download; the queue's settings map onto these."""

    concurrency: int | None = 4
    part_size: int = plan.DEFAULT_PART_SIZE
    retries: int = 6
    retry_base: float = 0.5
    overwrite: bool = False
    shm_limit: int | None = None
    rate_limit: float | None = None
    max_restarts: int = 3
    http: http_session.HTTPSettings = field(default_factory=http_session.HTTPSettings)
    # Anything with `concurrency` and `rate_limit` attributes, read on every turn of the download loop,
    # so a front end can change them while the download runs.
    live: Any = None


@dataclass
class Result:
    path: str
    size: int
    verdict: str
    outcomes: list[checksum.Outcome]
    crc32c: str
    elapsed: float
    resumed: int
    connections: int
    retries: int
    restarts: int
    probe: http.Probe | None = None


def download(
    url: str,
    path: str | None = None,
    *,
    concurrency: int | None = 4,
    checksum: ChecksumArg = None,
    overwrite: bool = False,
    options: Options | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    pool: WorkerPool | None = None,
    session: http_session.Session | None = None,
    store: control.ResumeStore | None = None,
    on_probe: Callable[[http.Probe, str], None] | None = None,
    live: Any = None,
) -> Result:
    """Download `url` to `path` (a file, or an existing directory; default the current directory).

    Raises UsageError for bad input, Cancelled when `cancel` is set (progress is kept for a resume),
    IntegrityError on a checksum mismatch (nothing reaches the final name) and DownloadError otherwise.

    `store` keeps the resume record of this one download (by default `NAME.getm-resume` beside the file).
    A store that keeps what its `clear` is asked to drop until the caller has recorded the end (as the
    supervisor's does) also turns a kill between the rename and that bookkeeping into a finished result
    on the next call, not a second download.
    """
    base = options or Options()
    opts = replace(base, concurrency=concurrency, overwrite=overwrite or base.overwrite)
    opts.live = live or base.live
    url = validate(url)
    expected_user = expected_from(checksum)
    directory, fixed_name = _split_target(path)
    if url.lower().startswith("file:"):
        return _copy_local(url, directory, fixed_name, opts, expected_user)
    if store is not None:
        finished = _finished_before(store.load(), url, directory, fixed_name)
        if finished is not None:
            return finished
    started = time.monotonic()
    own_session = session is None
    if session is None:
        session = http_session.make_session(opts.http)
    own_pool = None
    if pool is None and opts.concurrency:
        own_pool = pool = WorkerPool(opts.http)  # grown once we know the plan
        own_pool.single_use = True
    try:
        restarts = 0
        target: str | None = None
        while True:
            probe, resp = _with_retries(lambda: http.probe(session, url, opts.http), opts, cancel)
            if target is None:
                target = _choose_target(
                    directory, fixed_name or probe.filename or DEFAULT_NAME, url, opts, store
                )
                if on_probe:
                    on_probe(probe, target)
            st = store or control.ControlFile(control_path(target))
            try:
                result = _attempt(
                    url, target, probe, resp, session, st, expected_user, opts, pool, progress, cancel
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
                if st is not store:
                    st.close()  # type: ignore[attr-defined]
            result.restarts = restarts
            result.elapsed = time.monotonic() - started
            return result
    finally:
        if own_pool is not None:
            own_pool.close()
        if own_session:
            session.close()


def _split_target(path: str | None) -> tuple[str, str | None]:
    """(directory, file name or None) for a target that may be a directory, and check the directory exists."""
    if path is None:
        return os.getcwd(), None
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        return path, None
    if path.endswith(os.sep):
        raise UsageError(f"directory does not exist: {path}")
    directory, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"directory does not exist: {directory}")
    return directory, name


def _choose_target(
    directory: str, name: str, url: str, opts: Options, store: control.ResumeStore | None
) -> str:
    """The target path, with its `.getm-part` reserved (O_EXCL) so no other download can take the name.

    Our own partial download of the same URL is resumed in place; an existing file is never clobbered
    without `overwrite`; two downloads racing for one name get different names. The name is claimed in
    the resume record before the `.getm-part` is created, so a kill at any moment (before the first
    progress is saved, say) leaves a partial file the next attempt recognises as its own.
    """
    candidate = os.path.join(directory, name)
    if store is not None:
        # A store of this one download (the queue's job row) may name the file it went to: `NAME (1)`
        # when NAME was taken.
        claimed = control.claimed_name(store.load(), url)
        if claimed is not None and os.path.exists(part_path(os.path.join(directory, claimed))):
            return os.path.join(directory, claimed)
    if os.path.exists(part_path(candidate)):
        rec = (store or control.ControlFile(control_path(candidate))).load()
        if control.owns(rec, url, candidate):
            return candidate  # our own partial download: resume it
    if not (opts.overwrite and not os.path.exists(part_path(candidate))):
        candidate = free_name(candidate)
    while True:
        _claim(url, candidate, store)
        try:
            os.close(os.open(part_path(candidate), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            return candidate
        except FileExistsError:
            candidate = free_name(candidate)


def _claim(url: str, target: str, store: control.ResumeStore | None) -> None:
    """Record that `target`'s partial file is ours, before it exists (see _choose_target)."""
    if store is not None:
        store.save(control.claim(url, target))
        return
    own = control.ControlFile(control_path(target))
    try:
        own.save(control.claim(url, target))
    finally:
        own.close()


def _with_retries(
    fn: Callable[[], tuple[http.Probe, http_session.Reply]], opts: Options, cancel: threading.Event | None
):
    attempt = 0
    while True:
        try:
            return fn()
        except Retryable as e:
            attempt += 1
            _back_off(attempt, e, opts, cancel)


def _back_off(attempt: int, error: Exception, opts: Options, cancel: threading.Event | None) -> None:
    """Wait before retry number `attempt` (Retry-After, else backoff); raise when retries are used up
    (DownloadError) or when cancelled meanwhile (Cancelled)."""
    if attempt > opts.retries:
        raise DownloadError(f"giving up after {opts.retries} retries: {error}") from None
    retry_after = error.retry_after if isinstance(error, Retryable) else None
    delay = retry.delay_for(attempt, retry_after, opts.retry_base)
    log.info("%s; retry %d/%d in %.1fs", error, attempt, opts.retries, delay)
    if cancel is None:
        time.sleep(delay)
    elif cancel.wait(delay):
        raise Cancelled("cancelled") from None


def _attempt(
    url: str,
    target: str,
    probe: http.Probe,
    resp: http_session.Reply,
    session: http_session.Session,
    store: control.ResumeStore,
    expected_user: list[checksum.Expected],
    opts: Options,
    pool: WorkerPool | None,
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
) -> Result:
    partfile = part_path(target)
    parts = control.restore(store.load(), url, probe.size, probe.validator)
    if parts is not None and not probe.ranges:
        parts = None
    fd = os.open(partfile, os.O_RDWR | os.O_CREAT | (0 if parts else os.O_TRUNC), 0o644)
    sink = FileSink(partfile, fd)
    resumed = sum(p.kept for p in parts) if parts else 0
    if resumed:
        log.info("resuming %s: %d bytes already on disk", os.path.basename(target), resumed)
    try:
        if probe.size:
            _preallocate(fd, probe.size, partfile)
        verifier = checksum_verifier(expected_user, probe)

        def save(t: Transfer) -> None:
            store.save(control.record(url, probe.size, probe.validator, t.parts, target))

        small = probe.size is not None and probe.size <= INLINE_LIMIT
        if pool is None or opts.concurrency is None or (small and not parts):
            parts, retries = _inline(
                session, probe, resp, sink, verifier, parts, opts, progress, cancel, save
            )
            connections = 1
        else:
            resp.close()
            parts, connections, retries = _parallel(
                pool, probe, parts, sink, verifier, opts, progress, cancel, save
            )
        crc = whole_crc(parts)
        outcomes = verifier.finish(crc)
        verdict = checksum.verdict(outcomes)
        size = sum(p.done for p in parts)
        if verdict == "mismatch":
            os.close(fd)
            fd = -1
            _remove(partfile)
            store.clear()
            raise IntegrityError(_mismatch(target, outcomes))
        os.ftruncate(fd, size)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        rec = control.record(url, probe.size, probe.validator, parts, target)
        store.save(control.finished(rec, size, verdict, f"{crc:08x}", [_outcome_row(o) for o in outcomes]))
        final = _commit(partfile, target, opts.overwrite)
        store.clear()
        return Result(
            path=final,
            size=size,
            verdict=verdict,
            outcomes=outcomes,
            crc32c=f"{crc:08x}",
            elapsed=0.0,
            resumed=resumed,
            connections=connections,
            retries=retries,
            restarts=0,
            probe=probe,
        )
    except NoSpaceError:
        # Give the space back when none of it can be resumed (nothing recorded, or no known size).
        if control.restore(store.load(), url, probe.size, probe.validator) is None:
            if fd >= 0:
                os.close(fd)
                fd = -1
            _remove(partfile)
            store.clear()
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def _finished_before(
    rec: dict[str, Any] | None, url: str, directory: str, fixed_name: str | None
) -> Result | None:
    """The result of an earlier attempt that finished (verified, renamed) and was killed before its
    caller recorded that, as its record tells; None when there is still something to do."""
    name = control.claimed_name(rec, url)
    info = rec.get("finished") if rec else None
    if name is None or not isinstance(info, dict) or fixed_name not in (None, name):
        return None
    target = os.path.join(directory, name)
    partfile = part_path(target)
    try:
        size = os.stat(target).st_size
        outcomes = [_outcome_from(row) for row in info["outcomes"]]
        if size != info["size"]:
            return None
        if os.path.exists(partfile):
            if not os.path.samefile(partfile, target):
                return None
            os.unlink(partfile)  # killed between the two steps of _commit: link, then unlink
        log.info("%s was finished by an earlier attempt", name)
        return Result(target, size, info["verdict"], outcomes, info["crc32c"], 0.0, size, 0, 0, 0)
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _outcome_row(o: checksum.Outcome) -> list[Any]:
    e = o.expected
    return [e.algorithm, e.value, e.source, o.computed, o.ok, o.detail]


def _outcome_from(row: list[Any]) -> checksum.Outcome:
    algorithm, value, source, computed, ok, detail = row
    return checksum.Outcome(checksum.Expected(algorithm, value, source), computed, bool(ok), detail)


def _mismatch(target: str, outcomes: list[checksum.Outcome]) -> str:
    """One line naming each failed checksum with its expected and computed values."""
    lines = "; ".join(
        f"{o.expected.algorithm} from {o.expected.source}: "
        f"expected {o.expected.value}, computed {o.computed}" + (f" ({o.detail})" if o.detail else "")
        for o in outcomes
        if not o.ok
    )
    return f"checksum mismatch for {os.path.basename(target)}: {lines}"


def _rate_limit(opts: Options) -> float | None:
    """Bytes per second this download may use now (a front end may change it while it runs)."""
    if opts.live is not None:
        return opts.live.rate_limit
    return opts.rate_limit


class _Flusher:
    """Writes the file back to disk while it downloads, so the fsync at commit has little left to do.

    Without it a fast download leaves all of the file dirty in the page cache (the kernel starts writing
    only at 10% of memory) and the final fsync waits for the disk to take the whole file.
    """

    # What is dirty when the download ends is what the final fsync waits for. Every 0.1 s rather than
    # 0.2 s: a 1 GiB download on loopback went from 0.79 s to 0.69-0.71 s (the fsync at its end wrote half
    # as much; medians of 8), a rate-limited 256 MiB one (case b) from 0.850 s to 0.842 s (medians of 12).
    EVERY = 0.1

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.EVERY):
            try:
                os.fdatasync(self.fd)
            except OSError:
                return  # a full disk or a closed file: the commit's own fsync reports what matters

    def __enter__(self) -> _Flusher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _preallocate(fd: int, size: int, path: str) -> None:
    """Reserve the space up front: a full disk is reported before any byte is fetched."""
    before = os.fstat(fd)
    try:
        if before.st_blocks * 512 < size:
            os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(os.path.dirname(path) or ".").free
            os.ftruncate(fd, before.st_size)  # not 0: a resumed file holds bytes its record counts on
            raise NoSpaceError(
                f"no space left on device for {os.path.basename(path)[: -len('.getm-part')]}: "
                f"needs {size} bytes, {free} free"
            ) from None
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def _commit(partfile: str, target: str, overwrite: bool) -> str:
    """Move the finished file to its name; without overwrite never clobber (a free name is taken)."""
    if overwrite:
        os.replace(partfile, target)
        return target
    while True:
        try:
            os.link(partfile, target)
        except FileExistsError:
            target = free_name(target)
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if os.path.exists(target):
                target = free_name(target)
            os.rename(partfile, target)
            return target
        os.unlink(partfile)
        return target


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _inline(
    session: http_session.Session,
    probe: http.Probe,
    resp: http_session.Reply,
    sink: FileSink,
    verifier: checksum.Verifier,
    parts: list[plan.Part] | None,
    opts: Options,
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
    save: Callable[[Transfer], None],
) -> tuple[list[plan.Part], int]:
    """Read the whole file in this process over one connection, resuming with ranges after faults.

    Returns the parts (one) and how many retries it took.
    """
    size = probe.size
    if parts and len(parts) == 1:
        p = parts[0]
    else:
        if parts:  # a multi-part record: keep the contiguous prefix
            keep = 0
            for q in parts:
                keep += q.done
                if not q.complete:
                    break
            p = plan.Part(0, 0, size)
            p.done = p.kept = keep
            p.crc = _crc_of_file(sink, keep)
        else:
            p = plan.Part(0, 0, size)
    parts = [p]
    shim = _SaveShim(parts)
    # Re-hash what an earlier run left, then read on.
    pos = 0
    while pos < p.done:
        n = min(8 * 1024 * 1024, p.done - pos)
        verifier.update(sink.read(pos, n))
        pos += n
    # No bigger than the file: a fresh 1 MiB buffer (zeroed, mapped and faulted in) for each 64 KiB file
    # of a queue cost more than reading the file.
    buf = bytearray(READ_CHUNK if size is None else max(1, min(READ_CHUNK, size - p.done)))
    mv = memoryview(buf)
    attempt = retries = 0
    failed_at = 0  # p.done at the last failure: enough progress since then earns the retries back
    last_report = last_save = time.monotonic()
    current: http_session.Reply | None = resp
    if p.done:
        resp.close()  # the probe's body starts at byte 0: don't leave the server streaming it
        current = None
    t0 = time.monotonic()
    paced_from = p.done
    while True:
        try:
            if current is None:
                headers = {}
                if p.done and probe.ranges:
                    headers["Range"] = f"bytes={p.done}-"
                    if probe.validator:
                        headers["If-Range"] = probe.validator
                elif p.done:
                    p.done = p.crc = failed_at = 0
                    verifier.reset()
                current = http.get(session, probe.url, opts.http, headers)
                if "Range" in headers:
                    first, _l, _t = http.parse_content_range(current.headers.get("Content-Range", ""))
                    if current.status_code != 206:
                        raise RemoteChanged("the remote file changed (range answered with the whole file)")
                    if first != p.done:
                        raise Retryable(f"wrong Content-Range {current.headers.get('Content-Range')!r}")
            fp = getattr(current.raw, "_fp", None)
            readinto = fp.readinto if fp is not None else current.raw.readinto
            while size is None or p.done < size:
                if cancel is not None and cancel.is_set():
                    save(shim)  # type: ignore[arg-type]
                    raise Cancelled("cancelled")
                want = READ_CHUNK if size is None else min(READ_CHUNK, size - p.done)
                n = readinto(mv[:want])
                if not n:
                    if size is None:
                        break
                    raise Retryable(f"short read: connection closed after {p.done} of {size} bytes")
                chunk = mv[:n]
                sink.write(p.done, chunk)
                p.crc = crc32c(chunk, p.crc)
                verifier.update(chunk)
                p.done += n
                if attempt and p.done - failed_at >= retry.PROGRESS_FORGIVES:
                    attempt = 0
                now = time.monotonic()
                rate = _rate_limit(opts)
                if rate:
                    ahead = (p.done - paced_from) / rate - (now - t0)
                    if ahead > 0 and cancel is not None:
                        cancel.wait(min(ahead, 0.5))
                    elif ahead > 0:
                        time.sleep(min(ahead, 0.5))
                if now - last_save >= 1.0:
                    save(shim)  # type: ignore[arg-type]
                    last_save = now
                if progress and now - last_report >= PROGRESS_INTERVAL:
                    progress(
                        Progress(size, p.done, 1, 1, 0, [(0, size or -1, p.done, "active")], 0, now - t0)
                    )
                    last_report = now
            if p.end is None:
                p.end = p.done
            http.done_with(current)
            if progress:  # the last report says complete, as the parallel path's does
                elapsed = time.monotonic() - t0
                progress(Progress(p.end, p.done, 0, 1, 1, [(0, p.end, p.done, "done")], retries, elapsed))
            return parts, retries
        except (Retryable, *http_session.CONNECTION_ERRORS) as e:
            if isinstance(e, (NoSpaceError,)):
                raise
            if current is not None:
                current.close()
                current = None
            attempt += 1
            failed_at = p.done
            retries += 1
            try:
                _back_off(attempt, e, opts, cancel)
            except Cancelled:
                save(shim)  # type: ignore[arg-type]
                raise


class _SaveShim:
    """Lets the inline path use the same save callback as a Transfer."""

    def __init__(self, parts: list[plan.Part]) -> None:
        self.parts = parts


def _crc_of_file(sink: FileSink, n: int) -> int:
    crc = 0
    pos = 0
    while pos < n:
        data = sink.read(pos, min(8 * 1024 * 1024, n - pos))
        crc = crc32c(data, crc)
        pos += len(data)
    return crc


def _parallel(
    pool: WorkerPool,
    probe: http.Probe,
    parts: list[plan.Part] | None,
    sink: FileSink | None,
    verifier: checksum.Verifier,
    opts: Options,
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
    save: Callable[[Transfer], None] | None,
) -> tuple[list[plan.Part], int, int]:
    transfer = start_transfer(pool, probe, parts, sink, verifier, opts, save)
    try:
        transfer.schedule()  # starts the workers with their first parts
        # Started after the workers: a process with no other thread forks them directly (see workers).
        with _Flusher(sink.fd) if sink is not None else contextlib.nullcontext():
            run(transfer, progress, cancel, opts.live)
        if pool.single_use:
            pool.stop()
        return transfer.parts, transfer.connections, transfer.total_retries
    finally:
        transfer.close()
        if transfer.block is not None:
            transfer.block.close()


def start_transfer(
    pool: WorkerPool,
    probe: http.Probe,
    parts: list[plan.Part] | None,
    sink: FileSink | None,
    verifier: checksum.Verifier,
    opts: Options,
    save: Callable[[Transfer], None] | None,
) -> Transfer:
    """Plan parts and slots, allocate shared memory, and set up a Transfer (nothing is fetched yet)."""
    size = probe.size
    conc = max(1, opts.concurrency or 1)
    stream = not (probe.ranges and size is not None and conc > 1)
    if stream:
        if parts is None or len(parts) != 1:
            parts = [plan.Part(0, 0, size)]
        block, slots = shm.allocate(STREAM_SLOT, 1, STREAM_SLOTS - 1, opts.shm_limit)
        connections = 1
    else:
        assert size is not None
        if parts is None:
            parts = plan.split(size, plan.part_length(size, conc, opts.part_size))
        # Every part may be complete already: killed after the last save, before the commit.
        todo = sum(1 for p in parts if not p.complete)
        connections = max(1, min(conc, todo))
        if verifier.ordered or sink is None:
            # Bytes wait in shared memory for the hashers (or the reader) to take them in file order.
            longest = max(((p.length or 0) - p.kept for p in parts if not p.complete), default=0)
            extra = min(connections, max(0, todo - connections))
            block, slots = shm.allocate(max(longest, 64 * 1024), connections, extra, opts.shm_limit)
            connections = slots.connections
            parts = _fit(parts, slots.size)
        else:
            # Nothing needs the bytes in order: each worker writes, and crc32cs, what it reads, through
            # a buffer of its own. Reserving (and later freeing) a slot per connection in /dev/shm cost
            # 60 ms of a 256 MiB download's 1 s, and the bytes went through memory once more.
            block = slots = None
    # The pool grows as the transfer hands out its first parts (Transfer.schedule).
    return Transfer(
        pool,
        probe,
        parts,
        stream,
        block,
        slots,
        verifier,
        sink,
        connections,
        opts.retries,
        save=save,
        retry_base=opts.retry_base,
        rate=opts.rate_limit,
        http=opts.http if opts.http != pool.settings else None,
    )


def _fit(parts: list[plan.Part], slot: int) -> list[plan.Part]:
    """Split parts whose remaining bytes exceed a slot (little shared memory, or a resumed layout)."""
    out: list[plan.Part] = []
    for p in parts:
        remaining = (p.length or 0) - p.done
        if p.complete or remaining <= slot:
            out.append(p)
            continue
        head = plan.Part(0, p.start, p.start + p.done)
        head.done, head.kept, head.crc = p.done, p.kept, p.crc
        if p.done:
            out.append(head)
        for start in range(p.start + p.done, p.end or 0, slot):
            out.append(plan.Part(0, start, min(p.end or 0, start + slot)))
    for i, p in enumerate(out):
        p.index = i
    return out


def run(
    transfer: Transfer,
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
    live: Any = None,
) -> None:
    """Drive one transfer to its end on its pool."""
    pool = transfer.pool
    last = 0.0
    try:
        transfer.advance()  # bytes kept from an earlier run: hash them now, they bring no message
        while not transfer.finished:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            if live is not None:
                transfer.set_connections(live.concurrency)
                transfer.rate = live.rate_limit
            wait = transfer.schedule()
            for w, msg in pool.wait(min(wait, 0.1)):
                if w.owner is transfer:
                    transfer.handle(w, msg)
            if progress is not None:
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL:
                    progress(transfer.snapshot())
                    last = now
        if transfer.failure is not None:
            transfer.save_now()
            raise transfer.failure
        transfer.save_now()
    except (Cancelled, KeyboardInterrupt, DownloadError) as e:
        transfer.cancel()
        transfer.save_now()
        if isinstance(e, RemoteChanged):
            raise
        raise
    if progress is not None:
        progress(transfer.snapshot())


def _copy_local(
    url: str, directory: str, name: str | None, opts: Options, expected: list[checksum.Expected]
) -> Result:
    """file:// URLs: a verified copy through the same temporary-name-then-rename path."""
    src = file_path(url)
    if not os.path.isfile(src):
        raise DownloadError(f"no such file: {src}")
    started = time.monotonic()
    target = os.path.join(directory, name or os.path.basename(src))
    target = target if opts.overwrite else free_name(target)
    partfile = part_path(target)
    size = os.path.getsize(src)
    verifier = checksum.Verifier(expected, size)
    crc = 0
    fd = os.open(partfile, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    sink = FileSink(partfile, fd)
    try:
        _preallocate(fd, size, partfile)
        pos = 0
        with open(src, "rb") as f:
            while chunk := f.read(8 * 1024 * 1024):
                sink.write(pos, memoryview(chunk))
                crc = crc32c(chunk, crc)
                verifier.update(chunk)
                pos += len(chunk)
        outcomes = verifier.finish(crc)
        if checksum.verdict(outcomes) == "mismatch":
            raise IntegrityError(_mismatch(target, outcomes))
        os.ftruncate(fd, pos)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _remove(partfile)
        raise
    os.close(fd)
    final = _commit(partfile, target, opts.overwrite)
    return Result(
        final, pos, checksum.verdict(outcomes), outcomes, f"{crc:08x}", time.monotonic() - started, 0, 1, 0, 0
    )


class Reader:
    """A readable stream of a URL; `read()` returns memoryviews, into shared memory when workers fetch.

    Each view stays valid until the next `read()`; release it (or let it go) before `close()`. The bytes
    are verified against any checksum the server advertises, and IntegrityError is raised at the end
    of the stream on a mismatch.
    """

    def __init__(
        self,
        url: str,
        concurrency: int | None = 4,
        checksum: ChecksumArg = None,
        options: Options | None = None,
    ) -> None:
        self.opts = replace(options or Options(), concurrency=concurrency)
        self.url = validate(url)
        if self.url.lower().startswith("file:"):
            raise UsageError("urlopen takes http(s) URLs; open local files directly")
        self.session = http_session.make_session(self.opts.http)
        self.pool: WorkerPool | None = None
        self.transfer: Transfer | None = None
        self._resp: http_session.Reply | None = None
        self._pending: tuple[plan.Part, int] | None = None
        self._buf = memoryview(bytearray(READ_CHUNK))
        self._pos = 0
        self._attempt = 0
        self._failed_at = 0
        self._eof = False
        self.closed = False
        expected = expected_from(checksum)
        if concurrency:
            self.pool = WorkerPool(self.opts.http)
        try:
            self.probe, resp = _with_retries(
                lambda: http.probe(self.session, self.url, self.opts.http), self.opts, None
            )
            self.verifier = checksum_verifier(expected, self.probe)
            if self.pool is None or (self.probe.size is not None and self.probe.size <= INLINE_LIMIT):
                self._resp = resp
            else:
                resp.close()
                self.transfer = start_transfer(
                    self.pool, self.probe, None, None, self.verifier, self.opts, None
                )
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> int | None:
        return self.probe.size

    def read(self, size: int = -1) -> memoryview:
        if self.closed:
            raise ValueError("read from a closed Reader")
        self._release_pending()
        if self._eof:
            return memoryview(b"")
        view = self._read_inline(size) if self.transfer is None else self._read_shared(size)
        if not len(view):
            self._eof = True
            self._verify()
        return view

    def _read_inline(self, size: int) -> memoryview:
        want = READ_CHUNK if size < 0 else min(size, READ_CHUNK)
        if self.probe.size is not None:
            want = min(want, self.probe.size - self._pos)
        if want <= 0:
            return memoryview(b"")
        while True:
            try:
                if self._resp is None:
                    self._resp = self._reopen()
                fp = getattr(self._resp.raw, "_fp", None)
                readinto = fp.readinto if fp is not None else self._resp.raw.readinto
                n = readinto(self._buf[:want])
                if not n and self.probe.size is not None:
                    raise Retryable(f"connection closed after {self._pos} of {self.probe.size} bytes")
                break
            except (Retryable, *http_session.CONNECTION_ERRORS) as e:
                # Like download()'s inline path: continue with a range request where the fault hit.
                if self._resp is not None:
                    self._resp.close()
                    self._resp = None
                self._attempt += 1
                self._failed_at = self._pos
                _back_off(self._attempt, e, self.opts, None)
        self._pos += n
        if self._attempt and self._pos - self._failed_at >= retry.PROGRESS_FORGIVES:
            self._attempt = 0  # retries count across reads: a server dropping every few KiB must fail
        view = self._buf[:n]
        self.verifier.update(view)
        return view

    def _reopen(self) -> http_session.Reply:
        """A request for the rest of the body after a fault; bytes already handed out cannot be taken back."""
        if not self._pos:
            return http.get(self.session, self.probe.url, self.opts.http)
        if not self.probe.ranges:
            raise DownloadError(f"connection lost after {self._pos} bytes and the server cannot resume")
        headers = {"Range": f"bytes={self._pos}-"}
        if self.probe.validator:
            headers["If-Range"] = self.probe.validator
        resp = http.get(self.session, self.probe.url, self.opts.http, headers)
        first, _last, _total = http.parse_content_range(resp.headers.get("Content-Range", ""))
        if resp.status_code != 206:
            resp.close()
            raise DownloadError("the remote file changed while it was being read")
        if first != self._pos:
            resp.close()
            raise Retryable(f"wrong Content-Range {resp.headers.get('Content-Range')!r}")
        return resp

    def _read_shared(self, size: int) -> memoryview:
        t = self.transfer
        assert t is not None
        while True:
            if t.frontier >= len(t.parts):
                return memoryview(b"")
            p = t.parts[t.frontier]
            if p.done > p.hashed:
                ring = t._ring_of(p)
                n = p.done - p.hashed
                if size >= 0:
                    n = min(n, size)
                view, _rel = t._ring(ring, p.hashed, p.hashed + n)[0]
                self.verifier.update(view)
                self._pending = (p, len(view))
                return view
            if p.state == "done" and p.end is not None and p.hashed >= (p.length or 0):
                t._release(p)
                t.frontier += 1
                continue
            if t.failure is not None:
                raise t.failure
            wait = t.schedule()
            for w, msg in t.pool.wait(min(wait, 0.1)):
                if w.owner is t:
                    t.handle(w, msg)

    def _release_pending(self) -> None:
        if self._pending is None or self.transfer is None:
            return
        p, n = self._pending
        self._pending = None
        p.hashed += n
        t = self.transfer
        if t.stream and p.state == "active":
            for tid, (w, tp, task) in t.tasks.items():
                if tp is p:
                    t.pool.send(w, ("credit", tid, p.hashed + task.ring_size))

    def _verify(self) -> None:
        crc = whole_crc(self.transfer.parts) if self.transfer else None
        outcomes = self.verifier.finish(crc)
        if checksum.verdict(outcomes) == "mismatch":
            bad = "; ".join(
                f"{o.expected.algorithm}: expected {o.expected.value}, computed {o.computed}"
                for o in outcomes
                if not o.ok
            )
            raise IntegrityError(f"checksum mismatch for {redact(self.url)}: {bad}")
        self.outcomes = outcomes

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.transfer is not None:
            if not self.transfer.finished:
                self.transfer.cancel(grace=1.0)
            self.transfer.close()
            self.transfer.block.close()
        if self._resp is not None:
            self._resp.close()
        if self.pool is not None:
            self.pool.close()
        self.session.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[memoryview]:
        while True:
            view = self.read()
            if not len(view):
                return
            yield view


def checksum_verifier(expected_user: list[checksum.Expected], probe: http.Probe) -> checksum.Verifier:
    expected = expected_user + [e for e in probe.expected if e not in expected_user]
    return checksum.Verifier(expected, probe.size)


def urlopen(
    url: str, concurrency: int | None = 4, checksum: ChecksumArg = None, options: Options | None = None
) -> Reader:
    """A readable stream of `url`; see Reader."""
    return Reader(url, concurrency, checksum, options)


def iter_content(url: str, chunk_size: int = READ_CHUNK, concurrency: int | None = 4) -> Iterator[memoryview]:
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
