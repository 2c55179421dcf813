"""The process that owns running jobs: it takes queued jobs from SQLite, has job hosts (jobhost.py) run
them on the engine, records what happens, and tells front ends about it through the protocol.

It runs in its own process (spawn context), started by a front end that keeps a Pipe to it, and listens on
a 0600 Unix socket with an authkey so other front ends can attach. One per queue (SupervisorLock). It
never waits on a front end: each client has a sender thread with a bounded outbox, where a newer
snapshot replaces an unsent one.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue as _queue
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

from getm_tui.config import Settings
from getm_tui.engine.inline import INLINE_LIMIT
from getm_tui.queue.errors import QueueCorrupt, QueueError, QueueUnreachable
from getm_tui.queue.interface import JobQueue, open_queue
from getm_tui.queue.lock import QueueBusy, SupervisorLock
from getm_tui.queue.records import Finished, Job
from getm_tui.runner import fleet_side as fleet
from getm_tui.runner import hostio, sharing
from getm_tui.runner import hostmsg as H
from getm_tui.runner import protocol as P
from getm_tui.runner.budget import first_share, kind_of
from getm_tui.runner.clients import Client
from getm_tui.runner.commit import GroupCommit
from getm_tui.runner.endpoint import socket_path
from getm_tui.runner.frontends import (
    broadcast,
    flush_clients,
    hello,
    read_commands,
    snapshot,
    start_listener,
    take_joining,
)
from getm_tui.runner.jobhost import SHUTDOWN_GRACE, ForwardLogs, JobHost, LiveControl, host_count
from getm_tui.runner.mirrors import MirrorSchedule
from getm_tui.runner.names import HeldNames, settle
from getm_tui.runner.operations import Operations, OperationsError
from getm_tui.runner.outage import Kept, Outage
from getm_tui.runner.politeness import Origins, from_host, heard_holds, polite_turn
from getm_tui.runner.process import flush_std_streams, name_process
from getm_tui.runner.readiness import Readiness
from getm_tui.runner.running import LOST, Running, partial_exists, rate_of

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 0.1
SUPERVISOR_NICE = 5
RECONCILE_EVERY = 1.0
# A client of the socket has this long to answer the authkey challenge; one that connects and says
# nothing must not block every later front end (the handshake used to run in the accept loop).
HANDSHAKE_TIMEOUT = 5.0
# A runner of a fleet renews its leases this many times per lease_timeout: a beat or two may be late.
BEATS_PER_LEASE = 3


class Supervisor:
    def __init__(self, data_dir: str, settings: Settings, once: bool = False, listen: bool = True) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.once = once
        self.listen = listen
        self.lock = SupervisorLock(data_dir)
        self.running: dict[int, Running] = {}
        self.logs: _queue.Queue[tuple[int | None, int, str]] = _queue.Queue(maxsize=100_000)
        self.clients: list[Client] = []
        self._joining: _queue.Queue[Client] = _queue.Queue()
        self.stop = threading.Event()
        self.failed = 0
        self.done = 0
        self.rate_limit = settings.rate_limit
        self.shared = True  # the last share_out shared a rate limit or connections among big jobs
        self._hosts: list[JobHost] = []
        # During one of the loop's transactions (_turn), what must wait for its commit: a host's "saved"
        # (the engine goes on to create or rename files on the strength of it), a job's "run", and news
        # for front ends (they read the queue when they hear it).
        self._held: list[tuple[JobHost, H.ToHost] | tuple[None, Any]] | None = None
        self._readiness = Readiness()
        self._commits = GroupCommit()
        self._names = HeldNames()
        self._listener: multiprocessing.connection.Listener | None = None
        self._data_version = -1
        self._reconciled = 0.0  # 0.0: look at the queue in full now (a command, news from the fleet)
        self._slot_freed = False  # a job ended: claim the next at once (the queue did not change else)
        self._snapshot_at = 0.0
        # A fleet (several runners on a PostgreSQL queue): leases to renew, and what to count for others.
        self.fleet = False
        self._beat_at = 0.0
        self._fetched = 0
        self._finished = 0
        self.ops = Operations(settings, data_dir, lambda item: hostio.log_nowait(self, item))
        self.origins = Origins(settings.max_connections_per_host)  # what the hosts may open per origin
        # The fleet's database went away: what is kept for it, and the messages of the turn under way
        # (written again when it is back, if the turn's transaction was lost with the connection).
        self._outage: Outage | None = None
        self._taken: list[Kept] = []
        self._takeover_after = 0.0
        # A fleet's news from the database (a job added or steered elsewhere): the loop waits on it too.
        self._notices: Any = None
        self.mirrors = MirrorSchedule(settings, data_dir, once)

    # -- life cycle -------------------------------------------------------------------------------

    def serve(self, owner: multiprocessing.connection.Connection | None = None) -> int:
        try:
            self.lock.acquire()
        except QueueBusy as e:
            if owner is not None:
                self.clients.append(Client(owner, owner=True))
            broadcast(self, P.Busy(e.pid))
            flush_clients(self)
            return 2
        # First, while this process has one thread: then the hosts are forked, not spawned (see JobHost).
        self._hosts = [JobHost(self.settings, i) for i in range(host_count(self.settings.max_active))]
        if owner is not None:
            self.clients.append(Client(owner, owner=True))
        handler = ForwardLogs(lambda item: hostio.log_nowait(self, item))
        logging.getLogger("getm_tui").addHandler(handler)
        try:
            # Checked as it opens: a damaged file is backed up and rebuilt here, before any job runs.
            self.q: JobQueue = open_queue(
                self.settings.queue or self.data_dir,
                timeout_ms=int(self.settings.queue_timeout * 1000),
                recover=True,
            )
            self.fleet = self.q.join_fleet(self.data_dir, self.settings.lease_timeout)
            self.origins.slots = self.q.origin_slots()
            self._notices = self.q.listen()
            requeued = self.q.requeue_active()
            for job_id in requeued:
                log.info("job %d was left active by a stopped supervisor: queued again", job_id)
            self._names.on = not self.fleet
            settle(self.q, requeued)  # reservations of an earlier run (a fleet's runners make none)
            self.ops.start()
            self.mirrors.start()
            if self.listen:
                start_listener(self)
            broadcast(self, hello(self))
            self._loop()
        except QueueCorrupt as e:  # found while running: stop; the next start backs it up and rebuilds it
            broadcast(self, P.Fatal(f"{e}; stopped: run getm-tui again to keep the jobs that can be read"))
            flush_clients(self)
            return 2
        except (QueueError, OperationsError) as e:
            broadcast(self, P.Fatal(str(e)))
            flush_clients(self)
            return 2
        finally:
            self._shutdown()
            fleet.stop_listening(self)
            logging.getLogger("getm_tui").removeHandler(handler)
            if hasattr(self, "q"):
                with contextlib.suppress(sqlite3.Error):
                    self.q.close()  # the last connection checkpoints the WAL into the file
            self.lock.release()
        return 0

    def _loop(self) -> None:
        while not self.stop.is_set():
            # No wait while a look at the queue is due (at the start, after a job ends or a command).
            read_commands(self, 0.0 if self._reconciled == 0.0 or self._slot_freed else 0.05)
            self.ops.committed()
            hostio.drain_logs(self)
            hostio.record_synced(self)
            now = time.monotonic()
            polite_turn(self, now)
            try:
                if self._outage is not None and self._outage.back.is_set():
                    fleet.come_back(self)
                if self._outage is None:
                    self._look(now)
                if self.once and self._outage is None and not self.running and self._nothing_left():
                    break
            except QueueUnreachable as e:
                fleet.go_offline(self, e, [])
            if now - self._snapshot_at >= SNAPSHOT_EVERY:
                self._snapshot_at = now
                broadcast(self, snapshot(self))
            if any(c.owner for c in self.clients) and not any(c.owner and c.alive for c in self.clients):
                log.info("the front end that started the supervisor is gone: stopping")
                break
        hostio.drain_logs(self)

    def _look(self, now: float) -> None:
        """Look at the queue when it changed (or a while passed), and beat when a beat is due. A runner
        that listens hears of other processes' changes: it asks the queue's version only when told, or
        when its last look is a while ago (in case a notice was missed)."""
        due = self._reconciled == 0.0 or self._data_version == -1 or now - self._reconciled >= RECONCILE_EVERY
        version = self.q.data_version() if due or self._notices is None else self._data_version
        if version != self._data_version or now - self._reconciled >= RECONCILE_EVERY:
            self._data_version = version
            self._reconciled = now
            self._reconcile()
        elif self._slot_freed:
            with hostio.turn(self):
                self._fill()
        if self.fleet and now - self._beat_at >= self.settings.lease_timeout / BEATS_PER_LEASE:
            self._beat_at = now
            fleet.beat(self)

    def _nothing_left(self) -> bool:
        """For `run --once`: nothing queued; in a fleet, nothing active anywhere either (a job another
        runner holds may yet come back to the queue, when its runner stops renewing its lease)."""
        if not self.mirrors.first_pass.is_set():
            return False  # the saved mirrors due at the start may yet queue jobs
        if not self.fleet:
            return not self.q.next_runnable(1)
        counts = self.q.counts()
        return not counts["queued"] and not counts["active"]

    def _shutdown(self) -> None:
        """Stop fetching, record state, and go, within about two seconds."""
        self.mirrors.stop.set()
        for r in self.running.values():
            self._cancel(r)
        deadline = time.monotonic() + SHUTDOWN_GRACE
        if hasattr(self, "q"):
            with contextlib.suppress(QueueError):  # a damaged or locked file must not hide why we stop
                # The hosts' last words: each cancelled job saves its progress and ends.
                while fleet.unended(self) and time.monotonic() < deadline:
                    hostio.wait_hosts(self, max(0.0, deadline - time.monotonic()), [self._commits.wakeup])
                    hostio.record_synced(self)
                fleet.last_chance(self)
                for job_id in list(self.running):
                    # A job that did not end in time: its progress is saved as it goes.
                    self.q.unclaim(job_id)
                    self._names.release(self.q, job_id)
                if self.fleet:  # what it did since its last beat counts too
                    self.q.heartbeat(self._fetched, self._finished)
                    self.q.leave_fleet()
            # Hooks of the last jobs run to their end when the queue ran out, not when told to stop.
            self.ops.close(None if self.once and not self.stop.is_set() else SHUTDOWN_GRACE)
            hostio.drain_logs(self)
        for host in self._hosts:
            host.stop(timeout=1.0)
        self.mirrors.close()
        self._commits.close()
        take_joining(self)
        broadcast(self, P.Finished(self.failed, self.done))
        flush_clients(self)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            with contextlib.suppress(OSError):
                os.unlink(socket_path(self.data_dir))
        for c in self.clients:
            c.close()

    def _reconcile(self) -> None:
        """Bring running jobs in line with the queue, and start what may start."""
        with hostio.turn(self):
            self._reconcile_now()

    def _reconcile_now(self) -> None:
        self._check_running()
        self._fill()

    def _check_running(self) -> None:
        """Stop the running jobs the queue no longer has active (paused, removed), and pass on changes of
        their connections."""
        if self.running:
            seen = self.q.running_rows(tuple(self.running))
            for job_id, r in list(self.running.items()):
                row = seen.get(job_id)
                if row is None or row.state != "active":  # paused, canceled (removed), or gone
                    self._cancel(r)
                if row and row.concurrency:
                    r.control.concurrency = int(row.concurrency)
                    self._tell_control(r)

    def _fill_freed(self) -> None:
        """Claim jobs for the slots freed since the last look. Only this runner's own writes came since:
        the running jobs are as it knows them, and are not read again."""
        if self._slot_freed:
            self._fill()

    def _fill(self) -> None:
        """Claim and start queued jobs for the free slots."""
        self._slot_freed = False
        if self.stop.is_set():
            return
        free = self.settings.max_active - sum(not r.committing for r in self.running.values())
        if free <= 0:
            return
        for job in self.q.claim_runnable(free, exclude=tuple(self.running)):
            r = Running(job.id, job.display_name)
            r.control = LiveControl(job.concurrency or self.settings.concurrency)
            self.running[job.id] = r
            self._share_rate()
            self._start(r, job)
            broadcast(self, P.JobChanged(job.id, "active"))

    def _start(self, r: Running, job: Job) -> None:
        """Hand the job to the host with the fewest jobs (a new one if all have died)."""
        alive = [h for h in self._hosts if h.alive]
        if not alive:
            log.warning("starting a new job host: the last one stopped")
            self._hosts = [JobHost(self.settings, len(self._hosts))]
            alive = self._hosts
        host = min(alive, key=lambda h: len(self._jobs_of(h)))
        r.host = host
        others = [o for o in self.running.values() if o is not r and not o.committing]
        in_use = sum(1 if o.kind == "small" else o.cap for o in others)
        r.cap = first_share(r.control.concurrency, in_use, self.settings.max_connections)
        r.sent = (min(r.control.concurrency, r.cap), r.control.rate_limit)
        record = self.q.load_resume(job.id)
        self.ops.job_started(job, resumed=record is not None)
        r.directory, r.overwrite = job.directory, bool(job.info.get("overwrite"))
        record = record or self._names.reserve(self.q, job)  # in the claim's transaction: names.py
        hostio.after_commit(self, host, H.Run(job, record, *r.sent))

    def _jobs_of(self, host: JobHost) -> list[Running]:
        return [r for r in self.running.values() if r.host is host]

    def _cancel(self, r: Running) -> None:
        """Ask the job's host to stop it (paused, removed, shutdown); it saves its progress and ends."""
        if r.cancelled:
            return
        r.cancelled = True
        if r.host is not None:
            r.host.send(H.Cancel(r.job_id))

    def _tell_control(self, r: Running) -> None:
        sharing.tell_control(self, r)

    def _share_rate(self) -> None:
        sharing.share_out(self)

    # -- what hosts say ---------------------------------------------------------------------------

    def _from_host(self, host: JobHost, msg: H.FromHost) -> None:
        if isinstance(msg, H.Log):
            hostio.log_nowait(self, (msg.job_id, msg.level, msg.text))
            return
        if isinstance(msg, (H.Ask, H.Give, H.Hold)):
            from_host(self, host, msg)
            return
        r = self.running.get(msg.job_id)
        if isinstance(msg, H.Report):
            if r is not None:
                self._fetched += r.measure(msg.progress)
                self.ops.progress(msg.job_id, msg.progress)
            return
        if self._outage is not None:
            if isinstance(msg, H.Probe) and r is not None:
                r.name = os.path.basename(msg.path)
            fleet.keep(self, host, msg)
            return
        self._taken.append(Kept(host, msg))
        if isinstance(msg, H.Save):
            self._save(host, msg)
        elif isinstance(msg, H.Probe):
            if r is not None:
                r.name = os.path.basename(msg.path)
                r.kind = kind_of(msg.size, bool(msg.info.get("ranges")), INLINE_LIMIT)
                if r.kind == "big":
                    self._share_rate()
            self.q.record_probe(msg.job_id, msg.path, msg.size, msg.info)
        elif isinstance(msg, H.End) and r is not None:
            if msg.kind == "done" and msg.unsynced and isinstance(msg.payload, Finished):
                r.host, r.committing = None, True  # its host is done with it; its slot is free
                self._slot_freed = True
                hostio.to_commit(self, r, msg.payload, msg.pending)
            else:
                self._ended(r, msg.kind, msg.payload, msg.reason)

    def _save(self, host: JobHost, msg: H.Save, answer: bool = True) -> None:
        """Write a job's resume record; the host hears of it after the commit (unless it already has)."""
        r = self.running.get(msg.job_id)
        if r is not None and not self._names.allows(r.job_id, r.directory, msg.record):
            hostio.after_commit(self, host, H.Saved(msg.job_id, H.NAME_TAKEN))
            return
        speed = rate_of(r.history) if r is not None and self.fleet else None  # for other hosts' front ends
        self.q.save_resume(msg.job_id, msg.record, speed)
        if self.fleet and not self.q.holds(msg.job_id):
            # Not saved: the engine must not go on (create or rename files) on the strength of it.
            if answer:
                hostio.after_commit(self, host, H.Saved(msg.job_id, LOST))
            if r is not None:
                fleet.lost(self, r)
        elif answer:
            hostio.after_commit(self, host, H.Saved(msg.job_id, None))

    def _host_lost(self, host: JobHost) -> None:
        """A host died (killed, out of memory, a crash in C): its jobs end, and the next job starts a
        new host if no other is left."""
        host.alive = False
        self.origins.host_lost(host)
        host.process.join(1.0)
        code = host.process.exitcode
        log.warning("a job host stopped unexpectedly (exit code %s)", code)
        ended = fleet.ending(self)
        for r in self._jobs_of(host):
            if r.job_id in ended:
                continue
            if r.cancelled:
                self._from_host(host, H.End(r.job_id, "cancelled", None))
            else:
                error = f"internal error: the process running this job stopped (exit code {code})"
                self._from_host(host, H.End(r.job_id, "failed", error))

    def _ended(self, r: Running, kind: H.EndKind, payload: Finished | str | None, reason: str = "") -> None:
        """Record how a job ended (see hostmsg.End); it leaves `running` once that is committed (a
        transaction lost with the database is written again, and must find the job still there)."""
        q = self.q
        if r.lost:  # its record is another runner's now: this one's end changes nothing there
            broadcast(self, P.JobChanged(r.job_id, "lost", LOST))
        elif isinstance(payload, Finished):
            q.finish(r.job_id, payload)
            broadcast(self, P.JobChanged(r.job_id, "done", payload.verdict))
        elif isinstance(payload, str):
            job = q.get(r.job_id)
            # Bytes are kept only if the partial file the record names is still there (a full disk
            # or a mismatch removes it): otherwise say that nothing is kept.
            kept = partial_exists(q.load_resume(r.job_id), job)
            q.fail(r.job_id, payload, mismatch=kind == "mismatch", kept=kept)
            broadcast(self, P.JobChanged(r.job_id, "failed", payload))
        else:
            hostio.stopped(self, r)
        self.ops.job_ended(r.job_id, kind, payload, reason, lambda: q.get(r.job_id))
        hostio.when_committed(self, lambda: self._forget(r, payload))

    def _forget(self, r: Running, payload: Finished | str | None) -> None:
        """The job's end is recorded: count it, and free its slot."""
        self.running.pop(r.job_id, None)
        self._names.release(self.q, r.job_id)
        self._slot_freed = True  # look for the next job now
        self._share_rate()
        if r.lost:
            return
        if isinstance(payload, Finished):
            self.done += 1
            self._finished += 1
        elif isinstance(payload, str):
            self.failed += 1

    # -- what the helpers of the supervisor ask of one another (frontends, fleet_side, hostio) ----

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        with hostio.turn(self):
            yield

    def _log_event(self, job_id: int, level: int, message: str) -> None:
        hostio.log_event(self, job_id, level, message)

    def _wait_hosts(self, timeout: float, others: list[Any] | None = None) -> list[Any]:
        return hostio.wait_hosts(self, timeout, others, fill=True)

    def _heard(self) -> None:
        fleet.heard(self)
        heard_holds(self)

    def _broadcast(self, msg: Any) -> None:
        broadcast(self, msg)

    def _go_offline(self, e: QueueUnreachable, kept: list[Kept]) -> None:
        fleet.go_offline(self, e, kept)


def supervisor_main(
    data_dir: str,
    settings: Settings,
    owner: multiprocessing.connection.Connection | None,
    once: bool,
    level: int,
) -> None:
    """Entry point of the supervisor process."""
    name_process("getm-supervisor")
    # Background work: an interactive front end on the same machine must win the CPU over it.
    os.nice(SUPERVISOR_NICE)
    logging.basicConfig(level=level)
    logging.getLogger().handlers.clear()  # records go to front ends as LogLines
    logging.getLogger().setLevel(level)
    sup = Supervisor(data_dir, settings, once=once)

    def stop(_sig: int, _frame: object) -> None:
        sup.stop.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = sup.serve(owner)
    # Everything is recorded and every process of ours has been joined: the interpreter's teardown
    # (module by module, with nothing left to flush) would only keep the front end waiting at the end of
    # every `run --once`.
    flush_std_streams()
    os._exit(code)
