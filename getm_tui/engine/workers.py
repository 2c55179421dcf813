"""Persistent fetch processes that read HTTP bodies straight into shared memory.

Each worker keeps one http_session.Session (so keep-alive connections survive from part to part) and talks
to its coordinator over its own duplex pipe: tasks, credits and cancels go in; progress ("data"), "done"
and "error" come out. Shared-memory blocks arrive as file descriptors over the same pipe. Bodies are
read with the underlying http.client response's `readinto`, straight into the mapped block, so no byte is
copied in Python; when nothing needs the bytes in order (no checksum to feed, no reader), a task has no
block and the worker reads through a small buffer of its own, writes the file and keeps the part's
crc32c itself. Workers ignore SIGINT (the coordinator decides what a Ctrl-C means) and exit when their
pipe closes, so a dead coordinator leaves no orphans.
"""

from __future__ import annotations

import errno
import logging
import mmap
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import stat
import threading
import time
from dataclasses import dataclass
from multiprocessing import reduction
from typing import Any

from getm_tui.engine import urls
from getm_tui.engine.crc import crc32c
from getm_tui.engine.errors import DownloadError, HTTPStatusError, Retryable
from getm_tui.engine.sources import http, http_session

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# A task without a block reads through this private buffer: small enough to stay in the CPU cache
# between the socket read, the pwrite and the crc32c.
OWN_BUFFER = 256 * 1024
REPORT_EVERY = 1024 * 1024
REPORT_SECONDS = 0.1  # also report (and look for cancels) this often on slow connections
# A threaded process (the supervisor, the app, a library user's) has its workers forked by a fork server
# that has already imported this module (and requests): a new worker costs a fork, not an interpreter
# start and 100 ms of imports each, and no threaded process is ever forked (a fork can copy a lock that
# another thread holds). A process with no other thread (`getm-tui get`) forks its workers itself: the
# fork server's own start (an interpreter, the imports, a resource tracker: 0.2-0.4 s) was a fifth of a
# 1 GiB download on loopback.
START = multiprocessing.get_context("forkserver")
# requests too, though plain HTTP never loads it (see sources/http_session.py): a worker that needs it
# (TLS, a proxy) then shares the fork server's copy instead of importing its own.
START.set_forkserver_preload(["getm_tui.engine.workers", "requests"])
FORK = multiprocessing.get_context("fork")


def _start_method() -> multiprocessing.context.BaseContext:
    return FORK if threading.active_count() == 1 else START


@dataclass(frozen=True)
class Task:
    """One GET whose body goes into a ring of a block, or (block_id None) through the worker's own buffer.

    Positions are offsets from the start of the part the task belongs to; byte at position p lands at
    block offset `ring_offset + p % ring_size`. A part that fits its slot never wraps, so `credit` only
    matters for streams larger than their ring. Without a block the worker writes the file itself and
    folds the bytes into the part's crc32c, starting from `crc` (that of the part's first `start` bytes).
    """

    task_id: int
    block_id: int | None
    url: str
    headers: tuple[tuple[str, str], ...]
    ring_offset: int
    ring_size: int
    start: int
    end: int | None
    credit: int
    range_first: int | None
    validator: str | None
    rate: float | None = None
    file_id: int | None = None  # when set, the worker writes what it reads at file_offset + position
    file_offset: int = 0
    # The job's own HTTP settings when they differ from the pool's (a job added with --insecure): one
    # pool serves every job of a supervisor, so what is per job travels with the task.
    http: http_session.HTTPSettings | None = None
    crc: int = 0


class _Cancel(Exception):
    pass


def worker_session(settings: http_session.HTTPSettings) -> http_session.Session:
    """A worker's session; a request sent ahead for a worker is sent on one made here, so that its header
    fields are those of the worker's own fetch, which finds it by them."""
    return http_session.make_session(settings, pool_size=2)


class _Worker:
    """The loop inside a worker process."""

    def __init__(
        self,
        conn: multiprocessing.connection.Connection,
        settings: http_session.HTTPSettings,
        session: http_session.Session | None = None,
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.session = session if session is not None else worker_session(settings)
        self.blocks: dict[int, tuple[int, mmap.mmap, memoryview]] = {}
        self.files: dict[int, int] = {}
        self.credit: dict[int, int] = {}
        self.cancelled: set[int] = set()
        self._buffer: memoryview | None = None

    def run(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                return
            if not self._control(msg):
                return

    def _control(self, msg: tuple[Any, ...]) -> bool:
        kind = msg[0]
        if kind == "task":
            self._run_task(msg[1])
        elif kind == "attach":
            fd = reduction.recv_handle(self.conn)
            if msg[2] is None:
                self.files[msg[1]] = fd
            else:
                m = mmap.mmap(fd, msg[2])
                self.blocks[msg[1]] = (fd, m, memoryview(m))
        elif kind == "detach":
            if msg[1] in self.files:
                os.close(self.files.pop(msg[1]))
            entry = self.blocks.pop(msg[1], None)
            if entry:
                fd, m, view = entry
                view.release()
                m.close()
                os.close(fd)
        elif kind == "credit":
            self.credit[msg[1]] = max(self.credit.get(msg[1], 0), msg[2])
        elif kind == "cancel":
            self.cancelled.add(msg[1])
        elif kind == "stop":
            return False
        return True

    def _poll(self) -> None:
        """Take in control messages that arrived while reading."""
        while self.conn.poll():
            msg = self.conn.recv()
            if msg[0] == "task":
                raise RuntimeError("task sent to a busy worker")
            if not self._control(msg):
                raise SystemExit(0)

    def _run_task(self, task: Task) -> None:
        """Every answer ends with (position, crc32c up to it or None): what the coordinator may keep."""
        tid = task.task_id
        self.cancelled.discard(tid)
        self.credit[tid] = task.credit
        self._last = task.start
        self._crc = task.crc if task.block_id is None else None
        resp = None
        try:
            resp = self._open(task)
            self._read(task, resp)
            http.done_with(resp)  # a body read to its end keeps its connection alive
            resp = None
            self.conn.send(("done", tid, self._last, self._crc))
        except _Cancel:
            self.conn.send(("cancelled", tid, self._last, self._crc))
        except Retryable as e:
            self.conn.send(("error", tid, "retry", str(e), e.retry_after, self._last, self._crc))
        except (HTTPStatusError, DownloadError) as e:
            # DownloadError: what http.get refuses for good (a TLS failure, a redirect loop or an https ->
            # http redirect met by a part's request): fail the job with that line, not the worker.
            self.conn.send(("error", tid, "fatal", str(e), None, self._last, self._crc))
        except _Changed as e:
            self.conn.send(("error", tid, e.kind, str(e), None, self._last, self._crc))
        except _NoSpace as e:
            self.conn.send(("error", tid, "nospace", str(e), None, self._last, self._crc))
        except (*http_session.CONNECTION_ERRORS, ValueError) as e:
            msg = "timed out" if isinstance(e, (socket.timeout, TimeoutError)) else http.describe_error(e)
            self.conn.send(("error", tid, "retry", msg, None, self._last, self._crc))
        finally:
            if resp is not None:
                resp.close()
            self.credit.pop(tid, None)

    def _open(self, task: Task) -> http_session.Reply:
        headers = dict(task.headers)
        resp = http.get(self.session, task.url, task.http or self.settings, headers)
        if task.range_first is not None:
            if resp.status_code != 206:
                etag = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
                resp.close()
                if task.validator and etag and etag != task.validator:
                    raise _Changed("changed", "the remote file changed (new validator)")
                raise _Changed("noranges", f"server answered a range request with {resp.status_code}")
            first, last, _total = http.parse_content_range(resp.headers.get("Content-Range", ""))
            want_last = None if task.end is None else task.range_first + (task.end - task.start) - 1
            if first != task.range_first or (want_last is not None and last != want_last):
                resp.close()
                raise Retryable(f"wrong Content-Range {resp.headers.get('Content-Range')!r}")
        etag = resp.headers.get("ETag")
        if task.validator and etag and task.validator.startswith('"') and etag != task.validator:
            resp.close()
            raise _Changed("changed", "the remote file changed (new ETag)")
        return resp

    def _read(self, task: Task, resp: http_session.Reply) -> None:
        """Read the body to `task.end`; `self._last` (and `self._crc`) follow every byte that is kept."""
        readinto = _readinto(resp)
        own = task.block_id is None
        if own:
            if self._buffer is None:
                self._buffer = memoryview(bytearray(OWN_BUFFER))
            view = self._buffer
        else:
            view = self.blocks[task.block_id][2]
        out = self.files[task.file_id] if task.file_id is not None else -1
        pos = reported = task.start
        end = task.end
        tid = task.task_id
        started = reported_at = time.monotonic()
        while end is None or pos < end:
            credit = self.credit[tid]
            while pos >= credit:
                self._report(tid, pos, reported)
                reported = pos
                self._wait_message()
                credit = self.credit[tid]
                if tid in self.cancelled:
                    raise _Cancel
            if own:
                at, n = 0, OWN_BUFFER
            else:
                ring_pos = pos % task.ring_size
                at, n = task.ring_offset + ring_pos, min(task.ring_size - ring_pos, CHUNK)
            n = min(n, credit - pos)
            if end is not None:
                n = min(n, end - pos)
            got = readinto(view[at : at + n])
            if not got:
                if end is None:
                    break
                raise Retryable(
                    f"short read: connection closed after {pos - task.start} of {end - task.start} bytes"
                )
            if out >= 0:
                _write(out, view[at : at + got], task.file_offset + pos)
            if own:
                self._crc = crc32c(view[:got], self._crc)
            pos += got
            self._last = pos  # these bytes are kept (in the ring, or written): a fault must not lose them
            now = time.monotonic()
            if pos - reported >= REPORT_EVERY or pos == end or now - reported_at >= REPORT_SECONDS:
                self._report(tid, pos, reported)
                reported = pos
                reported_at = now
                self._poll()
                if tid in self.cancelled:
                    raise _Cancel
            if task.rate:
                ahead = (pos - task.start) / task.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(min(ahead, 0.5))
        self._report(tid, pos, reported)

    def _report(self, tid: int, pos: int, reported: int) -> None:
        if pos > reported:
            self.conn.send(("data", tid, pos, self._crc))

    def _wait_message(self) -> None:
        if not self.conn.poll(self.settings.read_timeout):
            raise Retryable("no credit from the coordinator")
        self._poll()

    _last = 0
    _crc: int | None = None


class _NoSpace(Exception):
    pass


def _write(fd: int, data: memoryview, offset: int) -> None:
    try:
        while data:
            n = os.pwrite(fd, data, offset)
            data = data[n:]
            offset += n
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _NoSpace("no space left on device") from None
        raise


def _readinto(resp: http_session.Reply) -> Any:
    """A readinto that returns what one socket read gives (up to the buffer), not a full buffer.

    http.client's readinto blocks until the whole buffer is filled, so on a slow link progress and
    cancels would wait for a full chunk. For a body of known length we read with the buffered reader's
    readinto1 and keep http.client's own bookkeeping (length left, closing at the end) as it would.
    Chunked or close-delimited bodies keep http.client's readinto, which knows their framing.
    """
    hr = getattr(resp.raw, "_fp", None)
    if hr is None:
        return resp.raw.readinto
    fp = getattr(hr, "fp", None)
    if getattr(hr, "chunked", True) or getattr(hr, "length", None) is None or not hasattr(fp, "readinto1"):
        return hr.readinto

    def readinto(b: memoryview) -> int:
        if hr.fp is None:
            return 0
        if len(b) > hr.length:
            b = b[: hr.length]
        n = hr.fp.readinto1(b)
        if not n and b:
            hr._close_conn()
            return 0
        hr.length -= n
        if not hr.length:
            hr._close_conn()
        return n

    return readinto


class _Changed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _worker_main(
    conn: multiprocessing.connection.Connection,
    settings: http_session.HTTPSettings,
    level: int,
    nice: int = 0,
    forked: bool = False,
    session: http_session.Session | None = None,
) -> None:
    """`session`: made by the coordinator before a fork, with this worker's first request sent ahead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if forked:
        drop_inherited_sockets(conn.fileno(), *(session.sockets() if session is not None else ()))
    if nice:
        os.nice(nice)
    logging.basicConfig(level=level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(urls.RedactingFilter())  # urllib3's debug lines name each request's query
    _Worker(conn, settings, session).run()
    # Nothing to flush or finalize (every byte was written with pwrite and reported): skip interpreter
    # teardown, which made stopping 16 workers take most of a second.
    os._exit(0)


def drop_inherited_sockets(*keep: int) -> None:
    """A worker forked straight from its coordinator holds copies of every descriptor it had: sockets among
    them would keep the coordinator's connections (and a library user's listening ports) open for as long
    as the worker lives. Each is pointed at /dev/null rather than closed, so that an object in the copied
    memory that closes "its" descriptor later cannot close one this worker has opened since."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for name in names:
            fd = int(name)
            if fd <= 2 or fd == null or fd in keep:
                continue
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.dup2(null, fd)
            except OSError:
                pass  # the directory listing's own descriptor, closed by now
    finally:
        os.close(null)


class WorkerHandle:
    def __init__(self, index: int, process: Any, conn: multiprocessing.connection.Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.task: Task | None = None
        self.owner: Any = None

    @property
    def busy(self) -> bool:
        return self.task is not None


class WorkerPool:
    """A set of fetch processes shared by the transfers of one coordinator process."""

    def __init__(self, settings: http_session.HTTPSettings, size: int = 0, nice: int = 0) -> None:
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
        while len(self.workers) < size:
            self.workers.append(self._spawn(len(self.workers)))

    def start(self, tasks: list[Task], owner: Any) -> list[WorkerHandle]:
        """A new worker for each task, each given its task as soon as it exists.

        When this process forks its workers, it first sends every task's request itself (plain HTTP) and
        each worker inherits its connection with the response on its way: all requests go out at once,
        and the server's time to first byte overlaps the forks. The other way (a fork server) only
        starts the workers.
        """
        sessions: list[http_session.Session | None] = [None] * len(tasks)
        if tasks and _start_method() is FORK:
            sessions = [self._send_ahead(task) for task in tasks]
        handles: list[WorkerHandle] = []
        try:
            for task, session in zip(tasks, sessions, strict=True):
                handle = self._spawn(len(self.workers), session)
                self.workers.append(handle)
                self.submit(handle, task, owner)
                handles.append(handle)
        finally:
            for session in sessions:
                if session is not None:
                    session.close()  # each worker has its own descriptor of its connection
        return handles

    def _send_ahead(self, task: Task) -> http_session.Session | None:
        session = worker_session(self.settings)
        try:
            if session.send_ahead(task.url, dict(task.headers), task.http or self.settings):
                return session
        except http_session.CONNECTION_ERRORS as e:
            log.debug("sending a request ahead failed (%s); the worker sends its own", http.describe_error(e))
        session.close()
        return None

    def _spawn(self, index: int, session: http_session.Session | None = None) -> WorkerHandle:
        start = _start_method()
        parent, child = start.Pipe(duplex=True)
        forked = start is FORK
        proc = start.Process(
            target=_worker_main,
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
            handle.conn.send(("attach", block_id, size))
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
            self._safe_send(w, ("detach", block_id))

    def idle(self) -> list[WorkerHandle]:
        return [w for w in self.workers if not w.busy]

    def submit(self, worker: WorkerHandle, task: Task, owner: Any) -> None:
        worker.task = task
        worker.owner = owner
        try:
            worker.conn.send(("task", task))
        except OSError:
            pass  # it died since wait() last looked: wait() reports ("dead",) with this task, to retry

    def send(self, worker: WorkerHandle, msg: tuple[Any, ...]) -> None:
        self._safe_send(worker, msg)

    def _safe_send(self, worker: WorkerHandle, msg: tuple[Any, ...]) -> None:
        try:
            worker.conn.send(msg)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the worker is dead; wait() reports it

    def wait(self, timeout: float) -> list[tuple[WorkerHandle, tuple[Any, ...]]]:
        """Messages from workers; a dead worker yields ("dead",) once and is replaced."""
        if not self.workers:
            time.sleep(timeout) if timeout > 0 else None
            return []
        by_conn = {w.conn: w for w in self.workers}
        by_sentinel = {w.process.sentinel: w for w in self.workers}
        ready = multiprocessing.connection.wait(list(by_conn) + list(by_sentinel), timeout)
        out: list[tuple[WorkerHandle, tuple[Any, ...]]] = []
        dead: list[WorkerHandle] = []
        for r in ready:
            w = by_conn.get(r)  # type: ignore[call-overload]
            if w is not None:
                try:
                    while w.conn.poll():
                        out.append((w, w.conn.recv()))
                except (EOFError, OSError):
                    if w not in dead:
                        dead.append(w)
            else:
                w = by_sentinel[r]  # type: ignore[index]
                if w not in dead:
                    dead.append(w)
        for w in dead:
            self._replace(w)
            out.append((w, ("dead",)))
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
        fresh = self._spawn(w.index)
        w.process, w.conn = fresh.process, fresh.conn
        # The dead worker's task is reported by the caller; the handle itself becomes idle.

    def stop(self) -> None:
        """Tell every worker to exit, without waiting: a pool made for one download stops them as soon as
        its transfer ends, so that their exits overlap the final fsync instead of following it."""
        if self._stopping:
            return
        self._stopping = True
        for w in self.workers:
            self._safe_send(w, ("stop",))

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
