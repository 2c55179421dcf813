"""The pool of fetch worker processes a coordinator hands its tasks to, and how those processes start.

What runs inside a worker is fetch.py; what goes over the pipes, messages.py. The pool starts workers,
passes them descriptors (shared-memory blocks, the partial file), sends their tasks and control messages,
collects what they report, and replaces any that dies.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import multiprocessing.process
import time
from multiprocessing import reduction

from getm_tui.engine import fetch
from getm_tui.engine.forking import fork_is_safe
from getm_tui.engine.messages import Attach, Detach, Died, FromWorker, Stop, Task, ToWorker
from getm_tui.engine.sources import http
from getm_tui.engine.sources.http_session import HTTPSettings, Session, connection_errors

log = logging.getLogger(__name__)

# A threaded process (the supervisor, the app, a library user's) has its workers forked by a fork server
# that has already imported this module (and requests): a new worker costs a fork, not an interpreter
# start and the imports, and no threaded process is ever forked (see forking.py). A process with no other
# thread (`getm-tui get`) forks its workers itself: starting a fork server (an interpreter, the imports, a
# resource tracker) would cost a short download more than the download.
START = multiprocessing.get_context("forkserver")
# requests too, though plain HTTP never loads it (see sources/http_session.py): a worker that needs it
# (TLS, a proxy) then shares the fork server's copy instead of importing its own.
START.set_forkserver_preload(["getm_tui.engine.workers", "requests"])
FORK = multiprocessing.get_context("fork")

StartMethod = multiprocessing.context.ForkContext | multiprocessing.context.ForkServerContext


def start_method() -> StartMethod:
    """How new workers start now: forked from this process while it has no other thread, else by the fork
    server. Decided once for a batch of workers (see WorkerPool.start), whose requests are sent ahead only
    when they are forked."""
    return FORK if fork_is_safe() else START


class WorkerHandle:
    """The coordinator's side of one worker: its process, its pipe, and the task it runs for whom."""

    def __init__(
        self,
        index: int,
        process: multiprocessing.process.BaseProcess,
        conn: multiprocessing.connection.Connection,
    ) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.task: Task | None = None
        self.owner: object = None  # the transfer its task is for

    @property
    def busy(self) -> bool:
        return self.task is not None


class WorkerPool:
    """A set of fetch processes shared by the transfers of one coordinator process."""

    def __init__(self, settings: HTTPSettings, size: int = 0, nice: int = 0) -> None:
        """`nice`: lower the workers' CPU priority, so a busy download never starves a user interface."""
        self.settings = settings
        self.nice = nice
        self.workers: list[WorkerHandle] = []
        self.blocks: dict[int, tuple[int, int | None]] = {}
        self._next_block = 1
        self._closed = False
        self._stopping = False
        # Set by whoever made the pool for one download only: its workers stop when the transfer ends.
        self.single_use = False
        self.grow(size)

    def grow(self, size: int) -> None:
        """Have at least `size` workers; new ones start in the background (spawn takes a while)."""
        method = start_method()
        while len(self.workers) < size:
            self.workers.append(self._spawn(len(self.workers), method))

    def start(self, tasks: list[Task], owner: object) -> list[WorkerHandle]:
        """A new worker for each task, each given its task as soon as it exists.

        When this process forks its workers, it first sends every task's request itself (plain HTTP) and
        each worker inherits its connection with the response on its way: all requests go out at once,
        and the server's time to first byte overlaps the forks. The other way (a fork server) only
        starts the workers.
        """
        method = start_method()
        sessions: list[Session | None] = [None] * len(tasks)
        if tasks and method is FORK:
            sessions = [self._send_ahead(task) for task in tasks]
        handles: list[WorkerHandle] = []
        try:
            for task, session in zip(tasks, sessions, strict=True):
                handle = self._spawn(len(self.workers), method, session)
                self.workers.append(handle)
                self.submit(handle, task, owner)
                handles.append(handle)
        finally:
            for session in sessions:
                if session is not None:
                    session.close()  # each worker has its own descriptor of its connection
        return handles

    def _send_ahead(self, task: Task) -> Session | None:
        if task.signer is not None or task.transport is not None:
            return None  # a bucket's request is signed by the worker as it sends it; FTP, SFTP are not HTTP
        session = fetch.worker_session(self.settings)
        try:
            if session.send_ahead(task.url, dict(task.headers), task.http or self.settings):
                return session
        except connection_errors() as e:
            log.debug("sending a request ahead failed (%s); the worker sends its own", http.describe_error(e))
        session.close()
        return None

    def _spawn(self, index: int, method: StartMethod, session: Session | None = None) -> WorkerHandle:
        parent, child = method.Pipe(duplex=True)
        forked = method is FORK
        proc = method.Process(
            target=fetch.worker_main,
            # A session travels only in a fork's copied memory (the fork server pickles its arguments).
            args=(child, self.settings, logging.getLogger().getEffectiveLevel(), self.nice, forked, session),
            name=f"getm-worker-{index}",
            daemon=True,
        )
        proc.start()
        child.close()
        handle = WorkerHandle(index, proc, parent)
        for block_id, (fd, size) in self.blocks.items():
            self._send_block(handle, block_id, fd, size)
        return handle

    def _send_block(self, handle: WorkerHandle, block_id: int, fd: int, size: int | None) -> None:
        try:
            handle.conn.send(Attach(block_id, size))
            reduction.send_handle(handle.conn, fd, handle.process.pid)
        except OSError:
            # The worker died (while idle, between downloads, say): wait() reports it and its
            # replacement is sent every block. Raising here would fail a download over a process the
            # pool is about to replace anyway.
            log.debug("fetch worker %d is gone; not attaching block %d", handle.index, block_id)

    def attach(self, fd: int, size: int | None) -> int:
        """Hand a descriptor to every worker: a shared-memory block to map, or (size None) a file to write."""
        block_id = self._next_block
        self._next_block += 1
        self.blocks[block_id] = (fd, size)
        for w in self.workers:
            self._send_block(w, block_id, fd, size)
        return block_id

    def detach(self, block_id: int) -> None:
        self.blocks.pop(block_id, None)
        for w in self.workers:
            self._safe_send(w, Detach(block_id))

    def idle(self) -> list[WorkerHandle]:
        return [w for w in self.workers if not w.busy]

    def submit(self, worker: WorkerHandle, task: Task, owner: object) -> None:
        worker.task = task
        worker.owner = owner
        try:
            worker.conn.send(task)
        except OSError:
            pass  # it died since wait() last looked: wait() reports Died() with this task, to retry

    def send(self, worker: WorkerHandle, msg: ToWorker) -> None:
        self._safe_send(worker, msg)

    def _safe_send(self, worker: WorkerHandle, msg: ToWorker) -> None:
        try:
            worker.conn.send(msg)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the worker is dead; wait() reports it

    def wait(self, timeout: float) -> list[tuple[WorkerHandle, FromWorker]]:
        """Messages from workers; a dead worker yields Died() once and is replaced."""
        if not self.workers:
            time.sleep(timeout) if timeout > 0 else None
            return []
        by_conn = {w.conn: w for w in self.workers}
        by_sentinel = {w.process.sentinel: w for w in self.workers}
        ready = multiprocessing.connection.wait(list(by_conn) + list(by_sentinel), timeout)
        out: list[tuple[WorkerHandle, FromWorker]] = []
        dead: list[WorkerHandle] = []
        for r in ready:
            if isinstance(r, multiprocessing.connection.Connection):
                w = by_conn[r]
                try:
                    while w.conn.poll():
                        out.append((w, w.conn.recv()))
                except (EOFError, OSError):
                    if w not in dead:
                        dead.append(w)
            elif isinstance(r, int):  # a process's sentinel: it ended
                w = by_sentinel[r]
                if w not in dead:
                    dead.append(w)
        for w in dead:
            self._replace(w)
            out.append((w, Died()))
        return out

    def kill(self, w: WorkerHandle) -> None:
        """Kill a worker that is stuck (in a read) and put a fresh process in its place."""
        w.process.kill()
        w.process.join(1.0)
        self._replace(w)

    def _replace(self, w: WorkerHandle) -> None:
        log.warning("fetch worker %d (pid %s) died; starting a new one", w.index, w.process.pid)
        try:
            w.conn.close()
        except OSError:
            pass
        w.process.join(0.1)
        fresh = self._spawn(w.index, start_method())
        w.process, w.conn = fresh.process, fresh.conn
        # The dead worker's task is reported by the caller; the handle itself becomes idle.

    def stop(self) -> None:
        """Tell every worker to exit, without waiting: a pool made for one download stops them as soon as
        its transfer ends, so that their exits overlap the final fsync instead of following it."""
        if self._stopping:
            return
        self._stopping = True
        for w in self.workers:
            self._safe_send(w, Stop())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop()
        deadline = time.monotonic() + 2.0
        for w in self.workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1.0)
            try:
                w.conn.close()
            except OSError:
                pass
        self.workers.clear()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
