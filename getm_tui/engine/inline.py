"""Fetching a file in the calling process, over one connection: small files, and `concurrency=None`.

No worker process and no shared memory: the probe's own response is read on into a reused buffer, written,
crc32c'd and hashed as it comes. After a fault the rest is asked for with a range request (`http.open_from`),
which urlopen's Reader uses too; a source with a transport of its own (FTP, SFTP) opens it its way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from getm_tui.engine import plan, retry
from getm_tui.engine.checksum import Verifier
from getm_tui.engine.crc import crc32c
from getm_tui.engine.errors import Cancelled, DownloadError, RemoteChanged, Retryable
from getm_tui.engine.options import Options
from getm_tui.engine.politeness import refused
from getm_tui.engine.progress import INTERVAL, Progress
from getm_tui.engine.result import Transferred
from getm_tui.engine.sink import FileSink
from getm_tui.engine.sources import http
from getm_tui.engine.sources.http import Probe
from getm_tui.engine.sources.http_session import Reply, Session, connection_errors

READ_CHUNK = 1024 * 1024
# Files no larger than this are read from the probe's response in the calling process, whatever the
# concurrency: one request, no processes, which is what a queue of many small files needs.
INLINE_LIMIT = plan.MIN_PART


def fetch_inline(
    session: Session,
    probe: Probe,
    resp: Reply,
    sink: FileSink,
    verifier: Verifier,
    parts: list[plan.Part] | None,
    opts: Options,
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
    save: Callable[[list[plan.Part]], None],
) -> Transferred:
    """Read the whole file in this process over one connection, resuming with ranges after faults."""
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
    # Re-hash what an earlier run left, then read on.
    for data in sink.read_back(0, p.done):
        verifier.update(data)
    # No bigger than the file: a fresh 1 MiB buffer (zeroed, mapped and faulted in) for each 64 KiB file
    # of a queue cost more than reading the file.
    buf = bytearray(READ_CHUNK if size is None else max(1, min(READ_CHUNK, size - p.done)))
    mv = memoryview(buf)
    attempt = retries = 0
    failed_at = 0  # p.done at the last failure: enough progress since then earns the retries back
    last_report = last_save = time.monotonic()
    current: Reply | None = resp
    if p.done:
        resp.close()  # the probe's body starts at byte 0: don't leave the server streaming it
        current = None
    t0 = time.monotonic()
    paced_from = p.done
    while True:
        try:
            if current is None:
                if p.done and not probe.ranges:
                    p.done = p.crc = failed_at = 0
                    verifier.reset()
                current = http.open_from(session, probe, opts.http, p.done)
            readinto = http.body_reader(current)
            while size is None or p.done < size:
                if cancel is not None and cancel.is_set():
                    save(parts)
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
                rate = opts.current_rate_limit()
                if rate:
                    ahead = (p.done - paced_from) / rate - (now - t0)
                    if ahead > 0 and cancel is not None:
                        cancel.wait(min(ahead, 0.5))
                    elif ahead > 0:
                        time.sleep(min(ahead, 0.5))
                if now - last_save >= 1.0:
                    save(parts)
                    last_save = now
                if progress and now - last_report >= INTERVAL:
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
            return Transferred(parts, 1, retries)
        except connection_errors(Retryable) as e:
            if current is not None:
                current.close()
                current = None
            attempt += 1
            failed_at = p.done
            retries += 1
            refused(opts.budget, probe.url, e)
            try:
                retry.back_off(attempt, e, opts.retries, opts.retry_base, cancel, opts.retry_cap)
            except (Cancelled, DownloadError):
                save(parts)
                raise
        except RemoteChanged:
            raise  # the bytes kept are of another file: nothing of them is worth a record
        except DownloadError:
            # Refused for good (an expired signed URL, say): what is on disk is kept for a new URL.
            save(parts)
            raise


def _crc_of_file(sink: FileSink, n: int) -> int:
    crc = 0
    for data in sink.read_back(0, n):
        crc = crc32c(data, crc)
    return crc
