"""Fetching a file through fetch workers: N range requests at once, or one stream in a background process.

`start_transfer` plans the parts and the shared memory they need and sets up a Transfer (transfer.py);
`drive` runs it to its end, reporting progress and taking in a front end's changes; `fetch_parallel` is
both, for download(), with the partial file written back to disk while it fills (target.Flusher).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from getm_tui.engine import plan, shm
from getm_tui.engine.checksum import Verifier
from getm_tui.engine.errors import Cancelled, DownloadError
from getm_tui.engine.options import Live, Options
from getm_tui.engine.progress import INTERVAL, Progress
from getm_tui.engine.result import Transferred
from getm_tui.engine.sink import FileSink
from getm_tui.engine.sources.http import Probe
from getm_tui.engine.target import Flusher
from getm_tui.engine.transfer import Transfer
from getm_tui.engine.workers import WorkerPool

# A stream's ring: STREAM_SLOTS slots of STREAM_SLOT bytes, so the worker reads on while its reader (or
# the hashers) takes what came before.
STREAM_SLOT = 4 * 1024 * 1024
STREAM_SLOTS = 4


def fetch_parallel(
    pool: WorkerPool,
    probe: Probe,
    parts: list[plan.Part] | None,
    sink: FileSink,
    verifier: Verifier,
    opts: Options,
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
    save: Callable[[list[plan.Part]], None],
) -> Transferred:
    """Fetch the file (what `parts` of an earlier run left, or all of it) into `sink` through `pool`."""
    transfer = start_transfer(pool, probe, parts, sink, verifier, opts, save)
    try:
        transfer.schedule()  # starts the workers with their first parts
        # Started after the workers: a process with no other thread forks them directly (see workers).
        with Flusher(sink.fd, enabled=opts.sync != "off"):
            drive(transfer, progress, cancel, opts.live)
        if pool.single_use:
            pool.stop()
        return Transferred(transfer.parts, transfer.connections, transfer.total_retries)
    finally:
        transfer.close()


def start_transfer(
    pool: WorkerPool,
    probe: Probe,
    parts: list[plan.Part] | None,
    sink: FileSink | None,
    verifier: Verifier,
    opts: Options,
    save: Callable[[list[plan.Part]], None] | None,
) -> Transfer:
    """Plan parts and slots, allocate shared memory, and set up a Transfer (nothing is fetched yet)."""
    size = probe.size
    conc = max(1, opts.concurrency or 1)
    stream = not (probe.ranges and size is not None and conc > 1)
    block: shm.Block | None
    slots: shm.SlotPlan | None
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
            # a buffer of its own: no slots to reserve and free in /dev/shm, and no second trip of the
            # bytes through memory.
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
        retry_cap=opts.retry_cap,
        rate=opts.rate_limit,
        http=opts.http if opts.http != pool.settings else None,
        budget=opts.budget,
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


def drive(
    transfer: Transfer,
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
    live: Live | None = None,
) -> None:
    """Drive one transfer to its end on its pool."""
    last = 0.0
    try:
        transfer.advance()  # bytes kept from an earlier run: hash them now, they bring no message
        while not transfer.finished:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            if live is not None:
                transfer.set_connections(live.concurrency)
                transfer.rate = live.rate_limit
            transfer.step()
            if progress is not None:
                now = time.monotonic()
                if now - last >= INTERVAL:
                    progress(transfer.snapshot())
                    last = now
        if transfer.failure is not None:
            transfer.save_now()
            raise transfer.failure
        transfer.save_now()
    except (Cancelled, KeyboardInterrupt, DownloadError):
        transfer.cancel()
        transfer.save_now()
        raise
    if progress is not None:
        progress(transfer.snapshot())
