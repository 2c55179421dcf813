"""Job hosts: the processes in which the supervisor's jobs run, up to max_active of them.

One Python process runs Python on one core at a time. A queue of small files costs CPU per job, most of
it Python (the HTTP request, JSON, the file's bookkeeping); run in the supervisor's own threads those jobs
used one core and fought over the GIL.
Each host runs its share of the jobs in threads of its own, with its own keep-alive sessions and fetch
processes. The queue stays the supervisor's: it is the one process that writes it, so hosts send their
resume records there (and wait for them to be written, where the engine relies on that) instead of
meeting each other at SQLite's lock, whose waits are sleeps of a millisecond or more.

The messages both ways are in hostmsg.py.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from getm_tui.config import Settings
from getm_tui.engine import Cancelled, EngineError, IntegrityError, Progress, control, download, expiry
from getm_tui.engine.checksum import expected_from
from getm_tui.engine.errors import ArchiveDamaged, DownloadError, HTTPStatusError, NoSpaceError, UsageError
from getm_tui.engine.fetch import drop_inherited_sockets
from getm_tui.engine.files import part_path
from getm_tui.engine.forking import fork_is_safe
from getm_tui.engine.options import Sync
from getm_tui.engine.sources.http_session import make_session
from getm_tui.engine.urls import redact_text
from getm_tui.engine.workers import WorkerPool
from getm_tui.queue.records import Finished, Job
from getm_tui.runner import hostmsg as H
from getm_tui.runner.hostbudget import HostBudget
from getm_tui.runner.hostthreads import JobThreads, Spares, job_of_thread
from getm_tui.runner.outbox import Outbox
from getm_tui.runner.process import die_with_parent, name_process
from getm_tui.runner.takeover import resumable, signed

log = logging.getLogger(__name__)

# One host per core. A host's threads share its GIL, and each system call of one lets another take it:
# with fewer hosts than cores a core idles, and with more, each job wakes more processes for the same work
# (the README's (k) notes give the measurements).
MIN_HOSTS = 2
MAX_HOSTS = 8
WORKER_NICE = 5  # fetch processes yield the CPU to the app (and to anything else the user runs)
SHUTDOWN_GRACE = 1.8  # what a host gives its jobs to record their progress when told to stop

SPAWN = multiprocessing.get_context("spawn")
FORK = multiprocessing.get_context("fork")


def host_count(max_active: int) -> int:
    return max(1, min(max_active, max(MIN_HOSTS, usable_cores()), MAX_HOSTS))


def usable_cores() -> int:
    """The cores this process may run on: its affinity mask (what a container's cpuset or taskset
    leaves it), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity masks here (macOS)
        return os.cpu_count() or 1


@dataclass
class LiveControl:
    """What a front end may change while a job runs; the engine reads it on every turn of its loop."""

    concurrency: int
    rate_limit: float | None = None


@dataclass
class _HostJob:
    job_id: int
    control: LiveControl
    record: dict[str, Any] | None = None  # its resume record as the queue holds it
    cancel: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)  # its thread is done with it


class ForwardLogs(logging.Handler):
    """Log records become (job id or None, level, redacted text) for `sink`: a host sends them to the
    supervisor, which keeps them as job events (error history) and shows them as LogLines."""

    def __init__(self, sink: Callable[[tuple[int | None, int, str]], None]) -> None:
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            # Redacted here too: records of urllib3 (and anything else) may name a signed URL.
            self.sink((job_of_thread(), record.levelno, redact_text(record.getMessage())))


class _RemoteStore:
    """A job's resume record, kept in the queue by the supervisor.

    `save` returns once the record is written: the engine counts on that (a claim before the partial file
    exists, a finished record before the rename). The engine never drops the record: the supervisor does,
    in the update that records the job's end. Dropped at the commit, a kill before that update would lose
    the fact that the file was finished, and the next run would fetch it again under `NAME (1)`.

    The record is the job's whatever URL it was written for: a job whose signed URL expired and was
    replaced resumes from its parts when the remote's size and validator still match.

    A name the supervisor reserved when it claimed the job (in that transaction) is claimed by the engine
    with no message: the claim is in the queue already. A claim of a name another of its jobs holds is
    refused (control.NameTaken), and the engine tries the next free name.
    """

    def __init__(self, host: _Host, job: Job, record: dict[str, Any] | None) -> None:
        self.host = host
        self.job_id = job.id
        self._record = control.rekeyed(record, job.url)
        self._reserved: dict[str, Any] | None = None
        if control.is_reserved(self._record):
            self._reserved = control.unreserved(self._record)

    def load(self) -> dict[str, Any] | None:
        return self._record

    def save(self, record: dict[str, Any]) -> None:
        if record == self._reserved:
            self._record, self._reserved = record, None
            return
        error = self.host.call(self.job_id, H.Save(self.job_id, signed(record)))
        if error == H.NAME_TAKEN:
            raise control.NameTaken(record.get("name"))
        if error is not None:
            raise DownloadError(error)
        self._record = record

    def clear(self) -> None:
        pass


class _Host:
    """The host's side: a loop that takes the supervisor's messages, and threads that run the jobs."""

    def __init__(self, conn: multiprocessing.connection.Connection, settings: Settings) -> None:
        self.conn = conn
        self.settings = settings
        self.jobs: dict[int, _HostJob] = {}
        self.outbox = Outbox(conn.send)
        # What every job's options start from: the settings' alone, built once rather than per job.
        self._http = settings.http()
        self._access = {anonymous: settings.access(anonymous=anonymous) for anonymous in (False, True)}
        self._replies: dict[int, tuple[threading.Event, list[str | None]]] = {}
        self._stopping = False
        keep = settings.max_active
        # What a finished job hands to the next: its fetch processes and its keep-alive session, so a
        # small job neither starts a process nor opens a connection.
        self._pools = Spares(lambda: WorkerPool(self._http, nice=WORKER_NICE), lambda p: p.close(), keep)
        self._sessions = Spares(lambda: make_session(self._http), lambda s: s.close(), keep)
        self._threads = JobThreads(self._run_job, keep)
        # Connections to each origin, granted by the supervisor (max_connections_per_host, Retry-After).
        self.budget = HostBudget(settings.max_connections_per_host, self.send)

    def send(self, msg: H.FromHost) -> None:
        """What the supervisor must act on now; news (probes, progress, log lines) goes by `post`."""
        self.outbox.send(msg)

    def post(self, msg: H.FromHost) -> None:
        self.outbox.post(msg)

    def call(self, job_id: int, msg: H.FromHost) -> str | None:
        """Send, and wait for the supervisor's answer (None, or why the message was refused); it answers
        every call, and a lost supervisor kills this process (PR_SET_PDEATHSIG) or ends the loop, which
        answers what is left."""
        if self._stopping:
            raise DownloadError("the supervisor stopped")  # nobody is left to answer
        done = threading.Event()
        reply: list[str | None] = []
        self._replies[job_id] = (done, reply)
        try:
            self.send(msg)
            done.wait()
        finally:
            self._replies.pop(job_id, None)
        return reply[0] if reply else None

    def serve(self) -> None:
        try:
            while True:
                try:
                    # While jobs wait for a thread, look again when one may have waited long enough.
                    due = self._threads.grow()
                    if due is not None and not self.conn.poll(due):
                        continue
                    msg = self.conn.recv()
                except (EOFError, OSError):
                    break
                if isinstance(msg, H.Stop):
                    break
                self._handle(msg)
        finally:
            self._stop()

    def _handle(self, msg: H.ToHost) -> None:
        if isinstance(msg, H.Batch):
            for one in msg.messages:
                self._handle(one)
        elif isinstance(msg, H.Run):
            job = msg.job
            hj = _HostJob(job.id, LiveControl(msg.concurrency, msg.rate_limit), msg.record)
            self.jobs[job.id] = hj
            self._threads.run(hj, job)
        elif isinstance(msg, H.Saved):
            waiting = self._replies.get(msg.job_id)
            if waiting is not None:
                waiting[1].append(msg.error)
                waiting[0].set()
        elif isinstance(msg, H.Control):
            running = self.jobs.get(msg.job_id)
            if running is not None:
                running.control.concurrency, running.control.rate_limit = msg.concurrency, msg.rate_limit
        elif isinstance(msg, H.Cancel):
            running = self.jobs.get(msg.job_id)
            if running is not None:
                running.cancel.set()
        elif isinstance(msg, H.Granted):
            self.budget.granted(msg.origin, msg.n)
        elif isinstance(msg, H.Held):
            self.budget.held(msg.origin, msg.seconds)

    def _stop(self) -> None:
        """Cancel what runs (each job records its progress), then let the threads and processes go."""
        self._stopping = True
        for hj in list(self.jobs.values()):
            hj.cancel.set()
        self._threads.hurry()  # a cancelled job that no thread has taken yet ends at once too
        for done, reply in list(self._replies.values()):
            reply.append("the supervisor stopped")  # nobody is left to write the record
            done.set()
        for hj in list(self.jobs.values()):
            hj.ended.wait(SHUTDOWN_GRACE)
        self._threads.close()
        self._pools.close_all()
        self._sessions.close_all()
        self.outbox.close()  # the last log lines

    def _run_job(self, hj: _HostJob, job: Job) -> None:
        record, why = resumable(hj.record, job.url, job.directory)
        if why:
            log.warning("%s", why)  # kept in the job's history
        store = _RemoteStore(self, job, record)
        pool: WorkerPool | None = None
        target = job.path or (os.path.join(job.directory, job.name) if job.name else job.directory)
        http_settings = self._http
        if job.info.get("insecure") and http_settings.verify_tls:
            # `add --insecure`: this job only; the pool's workers get these settings with each task.
            http_settings = replace(http_settings, verify_tls=False)
            log.warning("TLS certificate verification is off for this job (added with --insecure)")
        # Synced by the supervisor with other finished files (group commit), unless sync is off for the
        # queue or for this job (`add --no-sync`).
        # The group commit also moves the file to its name (after its finished record is written), so
        # this thread goes on to its next job without waiting for the supervisor.
        sync: Sync = "caller" if self.settings.sync and not job.info.get("no_sync") else "off"
        options = self.settings.engine_options(
            concurrency=hj.control.concurrency,
            rate_limit=hj.control.rate_limit,
            http=http_settings,
            access=self._access[bool(job.info.get("anonymous"))],
            sync=sync,
            overwrite=bool(job.info.get("overwrite")),  # a mirror's job replaces the older copy
            budget=self.budget,
            commit="caller" if sync == "caller" else "here",
        )
        probed: list[str | None] = [None]  # its Last-Modified, for a mirror's file (mirror/compare.py)

        def on_probe(probe: Any, path: str) -> None:
            probed[0] = probe.last_modified
            # Merged: what `add` put there (insecure) must survive the probe, for a retry.
            info = {
                **job.info,
                "headers": probe.headers,
                "ranges": probe.ranges,
                "validator": probe.validator,
            }
            self.post(H.Probe(job.id, path, probe.size, info))

        def on_progress(p: Progress) -> None:
            self.post(H.Report(job.id, p))

        end: H.End
        session = self._sessions.take()
        try:
            pool = self._pools.take()
            result = download(
                job.url,
                target,
                concurrency=hj.control.concurrency,
                checksum=expected_from(job.checksums, job.info.get("checksums_from") or "user"),
                options=options,
                progress=on_progress,
                cancel=hj.cancel,
                pool=pool,
                session=session,
                store=store,
                on_probe=on_probe,
                live=hj.control,
            )
            if "mirror" in job.info:  # a mirror's file takes the remote's time (the module loads only then)
                from getm_tui.mirror.compare import stamp

                # A file the group commit is to move is still at its partial name; its name keeps the time.
                stamp(part_path(result.path) if result.pending else result.path, job.info, probed[0])
            end = H.End(job.id, "done", _finished(result), unsynced=sync == "caller", pending=result.pending)
        except Cancelled:
            end = H.End(job.id, "cancelled", None)
        except IntegrityError as e:
            end = H.End(job.id, "mismatch", str(e), failure_reason(e))
        except EngineError as e:
            message = str(e)
            if message.startswith(expiry.EXPIRED):
                message += f" (getm-tui retry {job.id} --url NEW_URL)"
            end = H.End(job.id, "failed", message, failure_reason(e))
        except OSError as e:
            end = H.End(job.id, "failed", f"{e.strerror or e}: {e.filename or ''}".rstrip(": "), "os_error")
        except Exception as e:  # a bug must fail the job, not kill the host
            log.exception("job %d crashed", job.id)
            end = H.End(job.id, "failed", f"internal error: {type(e).__name__}: {e}", "internal")
        finally:
            if pool is not None:
                self._pools.give(pool, keep=not self._stopping)
            self._sessions.give(session, keep=not self._stopping)
        self.jobs.pop(job.id, None)
        with contextlib.suppress(OSError, ValueError):
            self.send(end)


def failure_reason(e: EngineError) -> str:
    """A failure's kind, from a small fixed set, for metrics: the message itself names files and hosts."""
    if isinstance(e, ArchiveDamaged):
        return "archive"
    if isinstance(e, IntegrityError):
        return "checksum"
    if isinstance(e, HTTPStatusError):
        return f"http_{e.status}"
    if isinstance(e, NoSpaceError):
        return "no_space"
    if isinstance(e, UsageError):
        return "usage"
    return "download"


def _finished(res: Any) -> Finished:
    """What the supervisor records of a finished download."""
    integrity = [
        {
            "algorithm": o.expected.algorithm,
            "source": o.expected.source,
            "expected": o.expected.value,
            "computed": o.computed,
            "ok": o.ok,
            "detail": o.detail,
        }
        for o in res.outcomes
    ]
    if res.archive:  # no checksum was known: the archive check is what was verified of the bytes
        integrity.append(
            {
                "algorithm": "archive",
                "source": res.archive,
                "expected": "intact",
                "computed": "intact",
                "ok": True,
                "detail": "decompressed in full",
            }
        )
    return Finished(res.path, res.size, res.verdict, res.crc32c, integrity)


def host_main(
    conn: multiprocessing.connection.Connection, settings: Settings, level: int, parent: int, forked: bool
) -> None:
    """Entry point of a job host."""
    # Killed when the supervisor dies, however it dies: a host outliving it would go on writing files
    # while a new supervisor takes the queue and starts the same jobs again.
    die_with_parent(parent)
    name_process(multiprocessing.current_process().name)  # getm-host-N
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if forked:
        drop_inherited_sockets(conn.fileno())
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(level)
    host = _Host(conn, settings)
    logging.getLogger("getm_tui").addHandler(ForwardLogs(lambda item: host.post(H.Log(*item))))
    host.serve()
    os._exit(0)  # the threads are done or abandoned; interpreter teardown would only wait on them


class JobHost:
    """The supervisor's handle on one host process."""

    def __init__(self, settings: Settings, index: int) -> None:
        # A process with one thread (the supervisor as it starts) forks its hosts: no interpreter start and
        # no imports. Later ones (one that replaces a host that died) are spawned.
        start = FORK if fork_is_safe() else SPAWN
        self.conn, child = start.Pipe(duplex=True)
        self.process = start.Process(
            target=host_main,
            args=(child, settings, logging.getLogger().getEffectiveLevel(), os.getpid(), start is FORK),
            name=f"getm-host-{index}",
            daemon=False,  # it starts fetch processes of its own
        )
        self.process.start()
        child.close()
        self.alive = True

    def send(self, msg: H.ToHost) -> bool:
        """False if the host is gone (the caller hears of it from the connection too)."""
        try:
            self.conn.send(msg)
            return True
        except (OSError, ValueError):
            self.alive = False
            return False

    def stop(self, timeout: float) -> None:
        """Ask it to stop (its jobs have ended or been given up on) and wait; kill it if it will not."""
        self.send(H.Stop())
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)
        with contextlib.suppress(OSError):
            self.conn.close()
        self.alive = False
