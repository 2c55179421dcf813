"""The coordinator of one download through fetch workers: hands parts to workers, writes and hashes what
they read, retries.

Data flow: a worker reads a part into its slot of the job's shared-memory block, `pwrite`s it at its file
offset, and reports how far it got; the coordinator folds the new bytes into the part's crc32c and feeds
the ordered hashers (md5, sha*, S3 layouts) from the lowest unhashed part, the frontier, straight out of
shared memory. A slot is reused only once its bytes are hashed, so verification overlaps the download
with no second pass over the file. Parts are given slots in file order, so the frontier part always has
one and the pipeline cannot deadlock. When order does not matter (no checksum to feed, no reader), there
is no block: workers keep each part's crc32c themselves and report it with their progress.

A reader (urlopen) takes the bytes in order itself, through `next_in_order` and `taken`, where a download
feeds its hashers; planning a transfer and driving it to its end is parallel.py.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

from getm_tui.engine import checksum, retry
from getm_tui.engine.crc import crc32c
from getm_tui.engine.errors import DownloadError, NoSpaceError, RemoteChanged
from getm_tui.engine.messages import Cancel, Credit, Died, Failed, Fault, Finished, FromWorker, Stopped, Task
from getm_tui.engine.plan import Part
from getm_tui.engine.politeness import ConnectionBudget, PartConnections
from getm_tui.engine.progress import Progress
from getm_tui.engine.shm import Block, Ring, SlotPlan
from getm_tui.engine.sink import FileSink
from getm_tui.engine.sources.http import Probe, range_headers
from getm_tui.engine.sources.http_session import HTTPSettings
from getm_tui.engine.workers import WorkerHandle, WorkerPool

log = logging.getLogger(__name__)

SAVE_EVERY_BYTES = 4 * 1024 * 1024
SAVE_EVERY_SECONDS = 1.0


class Transfer:
    """One attempt at a download against one probe; raise RemoteChanged to be started over."""

    def __init__(
        self,
        pool: WorkerPool,
        probe: Probe,
        parts: list[Part],
        stream: bool,
        block: Block | None,
        slots: SlotPlan | None,
        verifier: checksum.Verifier,
        sink: FileSink | None,
        connections: int,
        retries: int,
        save: Callable[[list[Part]], None] | None = None,
        retry_base: float = retry.BASE_DELAY,
        retry_cap: float = retry.MAX_DELAY,
        rate: float | None = None,
        http: HTTPSettings | None = None,
        budget: ConnectionBudget | None = None,
    ) -> None:
        """`http`: this download's settings when they differ from the pool's (sent with each task).
        `save` records the parts' progress (the resume record); the transfer owns `block` from now on."""
        self.pool = pool
        self.conns = PartConnections(budget, probe.url)
        self.http = http
        self.probe = probe
        self.parts = parts
        self.stream = stream
        self.block = block
        self.slots = slots
        # No block: parts whose order does not matter go through the workers' own buffers (see
        # start_transfer), so each worker writes, and crc32cs, what it reads.
        self.block_id = pool.attach(block.fd, block.size) if block is not None else None
        # Workers write what they read themselves: the writes spread over their processes and this one
        # is left with hashing in order.
        self.file_id = pool.attach(sink.fd, None) if sink is not None else None
        self.verifier = verifier
        self.sink = sink
        self.connections = connections
        self.retries = retries
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.rate = rate
        self._save = save
        self.free_slots = list(range(slots.count - 1, -1, -1)) if slots is not None and not stream else []
        self.tasks: dict[int, tuple[WorkerHandle, Part, Task]] = {}
        self.frontier = 0
        self.failure: DownloadError | None = None
        self.total_retries = 0
        self.started = time.monotonic()
        self._unsaved = 0
        self._saved_at = time.monotonic()
        self._task_ids = itertools.count(1)
        self._closed = False
        self._lent: Part | None = None  # the part of the bytes next_in_order handed out
        self.ordered = verifier.ordered or sink is None
        for p in parts:
            if p.complete:
                p.state = "done"

    # -- progress ---------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        if self.failure is not None:
            return True
        if self.stream:
            p = self.parts[0]
            return p.state == "done" and (not self.ordered or p.hashed >= p.done)
        return self.frontier >= len(self.parts) or (
            not self.ordered and all(p.state == "done" for p in self.parts)
        )

    def snapshot(self) -> Progress:
        elapsed = time.monotonic() - self.started
        return Progress.of_parts(self.parts, self.probe.size, len(self.tasks), self.total_retries, elapsed)

    # -- scheduling -------------------------------------------------------------------------------

    def step(self, timeout: float = 0.1) -> None:
        """Start what can start, then take in what the workers report: waits up to `timeout`, or less when
        a retry falls due sooner."""
        wait = self.schedule()
        for w, msg in self.pool.wait(min(wait, timeout)):
            if w.owner is self:
                self.handle(w, msg)

    def schedule(self) -> float:
        """Start tasks on idle workers; returns seconds until a waiting retry is due (or 1.0)."""
        if self.failure is not None:
            return 1.0
        now = time.monotonic()
        wait = 1.0
        idle = self.pool.idle()
        # Parts for workers that do not exist yet: started together (WorkerPool.start), so that their
        # requests go out before the forks.
        new: list[Part] = []
        for p in self.parts:
            if len(self.tasks) + len(new) >= self.connections:
                break
            if p.state != "pending":
                continue
            if p.not_before > now:
                wait = min(wait, p.not_before - now)
                if self.stream:
                    break
                continue
            if not idle and len(self.pool.workers) + len(new) >= self.connections:
                break
            if self.slots is not None and not self.stream and p.slot is None:
                if not self.free_slots:
                    break
                p.slot = self.free_slots.pop()
            if (later := self.conns.take(p.index)) > 0:
                wait = min(wait, later)
                break
            if idle:
                self._start(idle.pop(0), p)
            else:
                new.append(p)
        if new:
            tasks = [(p, task) for p in new if (task := self._task(p)) is not None]
            workers = self.pool.start([task for _p, task in tasks], self)
            for worker, (p, task) in zip(workers, tasks, strict=True):
                self._started(worker, p, task)
        return max(0.0, wait)

    def _start(self, worker: WorkerHandle, p: Part) -> None:
        task = self._task(p)
        if task is not None:
            self.pool.submit(worker, task, self)
            self._started(worker, p, task)

    def _started(self, worker: WorkerHandle, p: Part, task: Task) -> None:
        p.state = "active"
        self.tasks[task.task_id] = (worker, p, task)

    def _task(self, p: Part) -> Task | None:
        """The request for the rest of part p (None when the download cannot go on: see failure)."""
        probe = self.probe
        headers: tuple[tuple[str, str], ...] = ()
        range_first: int | None = None
        if self.stream:
            if p.done and not probe.ranges:
                if self.sink is None and p.hashed:
                    # A reader already handed these bytes out: starting over would repeat them.
                    self.failure = DownloadError(
                        f"connection lost after {p.hashed} bytes and the server cannot resume"
                    )
                    return None
                self._restart_stream(p)
            assert self.block is not None
            ring_offset, ring_size = 0, self.block.size
            consumed = p.hashed if self.ordered else p.done
            credit = consumed + ring_size
        elif self.slots is None:
            ring_offset, ring_size = 0, 0
            credit = p.length or 0
        else:
            assert p.slot is not None
            ring_offset, ring_size = p.slot * self.slots.size, self.slots.size
            credit = p.length or 0
        if probe.ranges and (not self.stream or p.done):
            range_first = p.start + p.done
            headers = tuple(range_headers(range_first, p.end, probe.validator).items())
        return Task(
            task_id=next(self._task_ids),
            block_id=self.block_id,
            url=probe.url,
            headers=headers,
            ring_offset=ring_offset,
            ring_size=ring_size,
            start=p.done,
            end=p.length,
            credit=credit,
            range_first=range_first,
            validator=probe.validator,
            rate=(self.rate / max(1, self.connections)) if self.rate else None,
            file_id=self.file_id,
            file_offset=p.start,
            http=self.http,
            crc=p.crc,
            signer=probe.signer,
            transport=probe.transport,
        )

    def _restart_stream(self, p: Part) -> None:
        """The server cannot resume: throw away what we have and read from the start."""
        log.info("server does not support ranges: restarting the stream from byte 0")
        p.done = p.kept = p.hashed = p.crc = p.failed_at = 0
        self.verifier.reset()
        if self.sink:
            self.sink.truncate()

    def set_connections(self, n: int) -> None:
        """Change how many connections this download uses, while it runs (a front end's + and -)."""
        if self.stream or self.failure is not None:
            return
        n = max(1, min(n, self.slots.count if self.slots is not None else len(self.parts)))
        if n == self.connections:
            return
        self.connections = n
        self.pool.grow(n)
        active = sorted(self.tasks.items(), key=lambda item: item[1][1].index, reverse=True)
        for tid, (w, _p, _t) in active[: max(0, len(active) - n)]:
            self.pool.send(w, Cancel(tid))  # the part keeps its progress and goes back to pending

    # -- events -----------------------------------------------------------------------------------

    def handle(self, worker: WorkerHandle, msg: FromWorker) -> None:
        if isinstance(msg, Died):
            task, worker.task, worker.owner = worker.task, None, None
            if task is not None and (died := self.tasks.pop(task.task_id, None)) is not None:
                self.conns.give(died[1].index)
                self._failed_part(died[1], "retry", "fetch worker process died", None)
            return
        tid = msg.task_id
        entry = self.tasks.get(tid)
        if entry is None:
            return
        _w, p, task = entry
        self._data(p, task, msg.pos, msg.crc)
        if isinstance(msg, Finished):
            self._finish_task(worker, tid)
            if p.end is None:
                p.end = p.start + p.done
                if self.probe.size is None:
                    self.probe.size = p.end
            if p.complete:
                self._part_done(p)
            else:
                p.state = "pending"
        elif isinstance(msg, Failed):
            self.conns.hold(msg.retry_after)  # first: nobody may take the origin between the two
            self._finish_task(worker, tid)
            if p.complete and msg.fault == "retry":
                self._part_done(p)  # the connection failed after the last byte: nothing is left to ask for
            else:
                self._failed_part(p, msg.fault, msg.message, msg.retry_after)
        elif isinstance(msg, Stopped):
            self._finish_task(worker, tid)
            # Stopped (fewer connections now, or a cancel) after its last byte: the part is whole. Asked
            # for again it would be an empty range, bytes=N-(N-1), which a server answers with the whole
            # file (200), and the download would start over as if the file had changed.
            if p.complete:
                self._part_done(p)
            else:
                p.state = "pending"
        self._advance()
        self._maybe_save()

    def _part_done(self, p: Part) -> None:
        p.state = "done"
        self._maybe_release(p)

    def _finish_task(self, worker: WorkerHandle, tid: int) -> None:
        if (entry := self.tasks.pop(tid, None)) is not None:
            self.conns.give(entry[1].index)
        if worker.task is not None and worker.task.task_id == tid:
            worker.task = None
            worker.owner = None

    def _failed_part(self, p: Part, what: Fault, message: str, after: float | None) -> None:
        p.state = "pending"
        p.errors.append(f"{time.strftime('%H:%M:%S')} {message}")
        if what == "fatal":
            self.failure = DownloadError(message)
            return
        if what == "nospace":
            where = self.sink.path if self.sink is not None else "the target"
            self.failure = NoSpaceError(f"no space left on device writing {where}")
            return
        if what in ("changed", "noranges"):
            # Not raised here: handle() runs inside a batch of worker messages, and raising would drop
            # the rest of the batch (a lost "done" leaves a task that never answers its cancel).
            self.failure = RemoteChanged(message)
            return
        p.attempts += 1
        p.failed_at = p.done
        self.total_retries += 1
        if p.attempts > self.retries:
            self.failure = DownloadError(f"giving up after {self.retries} retries: {message}")
            return
        delay = retry.delay_for(p.attempts, after, self.retry_base, self.retry_cap)
        p.not_before = time.monotonic() + delay
        log.info("part %d: %s; retry %d/%d in %.1fs", p.index, message, p.attempts, self.retries, delay)

    def _data(self, p: Part, task: Task, pos: int, crc: int | None) -> None:
        """Bytes [p.done, pos) of part p are now in its ring: write them and fold them into the crc.

        A worker that read through its own buffer has done both, and `crc` is the part's up to `pos`.
        """
        if pos <= p.done:
            return
        gained = pos - p.done
        if p.attempts and pos - p.failed_at >= retry.PROGRESS_FORGIVES:
            p.attempts = 0  # real progress since the last failure: a flaky server still gets us there
        if crc is not None:
            p.crc = crc
        else:
            assert self.block is not None
            for view, rel in Ring(task.ring_offset, task.ring_size).views(self.block.view, p.done, pos):
                if self.sink is not None and task.file_id is None:
                    self.sink.write(p.start + rel, view)
                p.crc = crc32c(view, p.crc)
        p.done = pos
        self._unsaved += gained

    def _views(self, p: Part, a: int, b: int) -> list[tuple[memoryview, int]]:
        """Views of part p's positions [a, b) in its ring (two when it wraps), with their positions."""
        assert self.block is not None
        if self.stream:
            ring = Ring(0, self.block.size)
        else:
            assert self.slots is not None
            ring = Ring((p.slot or 0) * self.slots.size, self.slots.size)
        return ring.views(self.block.view, a, b)

    def advance(self) -> None:
        """Take in what is already there before any worker reports: the parts an earlier run completed.

        Every other step forward follows a worker's message; a resumed download with nothing left to
        fetch gets none, and would otherwise wait for ever.
        """
        self._advance()

    def _advance(self) -> None:
        """Feed the ordered hashers from the frontier, release finished slots, return stream credit."""
        if self.sink is None:
            return  # a reader consumes in order itself
        if self.stream:
            p = self.parts[0]
            if self.ordered:
                self._hash(p)
            self._give_credit(p)
            return
        if not self.ordered:
            while self.frontier < len(self.parts) and self.parts[self.frontier].state == "done":
                self.frontier += 1
            return
        while self.frontier < len(self.parts):
            p = self.parts[self.frontier]
            self._hash(p)
            if p.state == "done" and p.hashed >= (p.length or 0):
                self._release(p)
                self.frontier += 1
                continue
            break

    def _hash(self, p: Part) -> None:
        if p.hashed < p.kept:
            assert self.sink is not None  # bytes kept from an earlier run are in the file
            upto = min(p.kept, p.done)
            for data in self.sink.read_back(p.start + p.hashed, p.start + upto):
                self.verifier.update(data)
            p.hashed = upto
        if p.hashed < p.done:
            for view, _rel in self._views(p, p.hashed, p.done):
                self.verifier.update(view)
            p.hashed = p.done

    def _give_credit(self, p: Part) -> None:
        """Let a stream's worker fill its ring again up to what has been taken out of it."""
        if not (self.stream and p.state == "active"):
            return
        consumed = p.hashed if self.ordered else p.done
        for tid, (w, tp, task) in self.tasks.items():
            if tp is p:
                self.pool.send(w, Credit(tid, consumed + task.ring_size))

    def _maybe_release(self, p: Part) -> None:
        if not self.ordered:
            self._release(p)

    def _release(self, p: Part) -> None:
        if p.slot is not None:
            self.free_slots.append(p.slot)
            p.slot = None

    def _maybe_save(self, force: bool = False) -> None:
        if self._save is None or (not self._unsaved and not force):
            return
        now = time.monotonic()
        threshold = SAVE_EVERY_BYTES * max(1, len(self.tasks))
        if force or self._unsaved >= threshold or now - self._saved_at >= SAVE_EVERY_SECONDS:
            self._save(self.parts)
            self._unsaved = 0
            self._saved_at = now

    def save_now(self) -> None:
        self._maybe_save(force=True)

    # -- taking the bytes in order (a reader) -----------------------------------------------------

    def next_in_order(self, limit: int) -> memoryview:
        """A view of the next bytes of the file that nobody has taken yet, at most `limit` (all that are
        there, up to where the ring wraps, when negative); empty at the end of the file. Drives the workers
        until there are some, and raises the transfer's failure. The bytes stay where they are, and the
        view valid, until `taken` says how many of them were used."""
        while True:
            if self.frontier >= len(self.parts):
                return memoryview(b"")
            p = self.parts[self.frontier]
            if p.done > p.hashed:
                n = p.done - p.hashed
                if limit >= 0:
                    n = min(n, limit)
                view, _at = self._views(p, p.hashed, p.hashed + n)[0]
                self._lent = p
                return view
            if p.state == "done" and p.end is not None and p.hashed >= (p.length or 0):
                self._release(p)
                self.frontier += 1
                continue
            if self.failure is not None:
                raise self.failure
            self.step()

    def taken(self, n: int) -> None:
        """The first `n` bytes of the last view are used: their room goes back to the worker filling it."""
        p, self._lent = self._lent, None
        if p is not None:
            p.hashed += n
            self._give_credit(p)

    # -- stopping ---------------------------------------------------------------------------------

    def cancel(self, grace: float = 2.0) -> None:
        """Stop every task of ours and take in what they read up to then."""
        for tid, (w, _p, _t) in list(self.tasks.items()):
            self.pool.send(w, Cancel(tid))
        deadline = time.monotonic() + grace
        while self.tasks and time.monotonic() < deadline:
            for w, msg in self.pool.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
                if w.owner is self or isinstance(msg, Died):
                    self.handle(w, msg)
        for tid, (w, _p, _t) in list(self.tasks.items()):
            # A worker that did not answer in time is stuck in a read: replace it.
            log.warning("worker %d did not stop in time; killing it", w.index)
            self._finish_task(w, tid)
            self.pool.kill(w)  # and start a fresh one: the pool must not keep a dead worker
        for p in self.parts:
            if p.state == "active":
                p.state = "pending"

    def close(self) -> None:
        """Take the block and the file back from the workers, and let the block go."""
        if self._closed:
            return
        self._closed = True
        self.conns.close()
        if self.block_id is not None:
            self.pool.detach(self.block_id)
        if self.file_id is not None:
            self.pool.detach(self.file_id)
        if self.block is not None:
            self.block.close()
