"""The loop inside a fetch worker process: one GET at a time, its body read straight into shared memory.

Each worker keeps one Session (so keep-alive connections survive from part to part) and talks to its
coordinator over its own duplex pipe (messages.py): tasks, credits and cancels go in; progress, the end of
each task and its failures come out. Shared-memory blocks arrive as file descriptors over the same pipe.
Bodies are read with the underlying http.client response's `readinto`, straight into the mapped block, so
no byte is copied in Python; when nothing needs the bytes in order (no checksum to feed, no reader), a task
has no block and the worker reads through a small buffer of its own, writes the file and keeps the part's
crc32c itself. Workers ignore SIGINT (the coordinator decides what a Ctrl-C means) and exit when their
pipe closes, so a dead coordinator leaves no orphans.
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing.connection
import os
import signal
import stat
import time
from collections.abc import Callable
from multiprocessing import reduction

from getm_tui.engine import urls
from getm_tui.engine.crc import crc32c
from getm_tui.engine.errors import DownloadError, RemoteChanged, Retryable
from getm_tui.engine.messages import (
    Attach,
    Cancel,
    Credit,
    Detach,
    Failed,
    Fault,
    Fetched,
    Finished,
    Stop,
    Stopped,
    Task,
    ToWorker,
)
from getm_tui.engine.sink import NO_SPACE, write_at
from getm_tui.engine.sources import http
from getm_tui.engine.sources.http_session import HTTPSettings, Reply, Session, connection_errors, make_session

CHUNK = 1024 * 1024
# A task without a block reads through this private buffer: small enough to stay in the CPU cache
# between the socket read, the pwrite and the crc32c.
OWN_BUFFER = 256 * 1024
REPORT_EVERY = 1024 * 1024
REPORT_SECONDS = 0.1  # also report (and look for cancels) this often on slow connections


class _Cancel(Exception):
    pass


class _NoSpace(Exception):
    pass


class _Changed(Exception):
    def __init__(self, fault: Fault, message: str) -> None:
        super().__init__(message)
        self.fault: Fault = fault


def worker_session(settings: HTTPSettings) -> Session:
    """A worker's session; a request sent ahead for a worker is sent on one made here, so that its header
    fields are those of the worker's own fetch, which finds it by them."""
    return make_session(settings, pool_size=2)


class _Worker:
    """The loop inside a worker process."""

    def __init__(
        self,
        conn: multiprocessing.connection.Connection,
        settings: HTTPSettings,
        session: Session | None = None,
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

    def _control(self, msg: ToWorker) -> bool:
        if isinstance(msg, Task):
            self._run_task(msg)
        elif isinstance(msg, Credit):
            self.credit[msg.task_id] = max(self.credit.get(msg.task_id, 0), msg.upto)
        elif isinstance(msg, Cancel):
            self.cancelled.add(msg.task_id)
        elif isinstance(msg, Attach):
            fd = reduction.recv_handle(self.conn)
            if msg.size is None:
                self.files[msg.block_id] = fd
            else:
                m = mmap.mmap(fd, msg.size)
                self.blocks[msg.block_id] = (fd, m, memoryview(m))
        elif isinstance(msg, Detach):
            if msg.block_id in self.files:
                os.close(self.files.pop(msg.block_id))
            entry = self.blocks.pop(msg.block_id, None)
            if entry:
                fd, m, view = entry
                view.release()
                m.close()
                os.close(fd)
        elif isinstance(msg, Stop):
            return False
        return True

    def _poll(self) -> None:
        """Take in control messages that arrived while reading."""
        while self.conn.poll():
            msg = self.conn.recv()
            if isinstance(msg, Task):
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
            self.conn.send(Finished(tid, self._last, self._crc))
        except _Cancel:
            self.conn.send(Stopped(tid, self._last, self._crc))
        except Retryable as e:
            self._fail(tid, "retry", str(e), e.retry_after)
        except RemoteChanged as e:  # a transport of its own found another size or modification time
            self._fail(tid, "changed", str(e))
        except DownloadError as e:
            # An HTTPStatusError, or what http.get refuses for good (a TLS failure, a redirect loop or an
            # https -> http redirect met by a part's request): fail the job with that line, not the worker.
            self._fail(tid, "fatal", str(e))
        except _Changed as e:
            self._fail(tid, e.fault, str(e))
        except _NoSpace as e:
            self._fail(tid, "nospace", str(e))
        except connection_errors(ValueError) as e:
            # socket.timeout is TimeoutError (Python 3.10 on)
            self._fail(tid, "retry", "timed out" if isinstance(e, TimeoutError) else http.describe_error(e))
        finally:
            if resp is not None:
                resp.close()
            self.credit.pop(tid, None)

    def _fail(self, tid: int, fault: Fault, message: str, retry_after: float | None = None) -> None:
        self.conn.send(Failed(tid, self._last, self._crc, fault, message, retry_after))

    def _open(self, task: Task) -> Reply:
        if task.transport is not None:
            first = task.range_first if task.range_first is not None else 0
            return task.transport.open(first, task.range_end, task.http or self.settings)
        headers = dict(task.headers)
        resp = http.get(self.session, task.url, task.http or self.settings, headers, task.signer)
        if task.range_first is not None and not http.answers_range(resp, task.range_first, task.range_end):
            etag = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
            if task.validator and etag and etag != task.validator:
                raise _Changed("changed", "the remote file changed (new validator)")
            raise _Changed("noranges", f"server answered a range request with {resp.status_code}")
        etag = resp.headers.get("ETag")
        if task.validator and etag and task.validator.startswith('"') and etag != task.validator:
            resp.close()
            raise _Changed("changed", "the remote file changed (new ETag)")
        return resp

    def _read(self, task: Task, resp: Reply) -> None:
        """Read the body to `task.end`; `self._last` (and `self._crc`) follow every byte that is kept."""
        readinto = _readinto(resp)
        own = task.block_id is None
        if task.block_id is None:
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
            self.conn.send(Fetched(tid, pos, self._crc))

    def _wait_message(self) -> None:
        if not self.conn.poll(self.settings.read_timeout):
            raise Retryable("no credit from the coordinator")
        self._poll()

    _last = 0
    _crc: int | None = None


def _write(fd: int, data: memoryview, offset: int) -> None:
    try:
        write_at(fd, data, offset)
    except OSError as e:
        if e.errno in NO_SPACE:
            raise _NoSpace("no space left on device") from None
        raise


def _readinto(resp: Reply) -> Callable[[memoryview], int]:
    """A readinto that returns what one socket read gives (up to the buffer), not a full buffer.

    http.client's readinto blocks until the whole buffer is filled, so on a slow link progress and
    cancels would wait for a full chunk. For a body of known length we read with the buffered reader's
    readinto1 and keep http.client's own bookkeeping (length left, closing at the end) as it would.
    Chunked or close-delimited bodies keep http.client's readinto, which knows their framing.
    """
    hr = getattr(resp.raw, "_fp", None)
    if hr is None or getattr(hr, "chunked", True) or getattr(hr, "length", None) is None:
        return http.body_reader(resp)
    if not hasattr(getattr(hr, "fp", None), "readinto1"):
        return http.body_reader(resp)

    def readinto(b: memoryview) -> int:
        if hr.fp is None:
            return 0
        if len(b) > hr.length:
            b = b[: hr.length]
        n: int = hr.fp.readinto1(b)
        if not n and b:
            hr._close_conn()
            return 0
        hr.length -= n
        if not hr.length:
            hr._close_conn()
        return n

    return readinto


def worker_main(
    conn: multiprocessing.connection.Connection,
    settings: HTTPSettings,
    level: int,
    nice: int = 0,
    forked: bool = False,
    session: Session | None = None,
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
