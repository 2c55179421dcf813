"""The process that owns running jobs: it takes queued jobs from SQLite, has job hosts (jobhost.py) run
them on the engine, records what happens, and tells front ends about it through the protocol.

It runs in its own process (spawn context), started by a front end that keeps a Pipe to it, and listens on
a 0600 Unix socket with an authkey so other front ends can attach. One per queue (SupervisorLock). It
never waits on a front end: each client has a sender thread with a bounded outbox, where a newer
snapshot replaces an unsent one.
"""

from __future__ import annotations

import collections
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
from dataclasses import dataclass, field
from typing import Any

from getm_tui.config import Settings
from getm_tui.engine import Progress, control
from getm_tui.engine.files import part_path
from getm_tui.engine.inline import INLINE_LIMIT
from getm_tui.queue.errors import QueueCorrupt, QueueError, QueueUnreachable, UnknownJob
from getm_tui.queue.interface import JobQueue, open_queue
from getm_tui.queue.lock import QueueBusy, SupervisorLock
from getm_tui.queue.records import Finished, Job
from getm_tui.queue.removal import delete_files, files_of_removal
from getm_tui.queue.states import TRANSITIONS, Transition
from getm_tui.runner import hostmsg as H
from getm_tui.runner import protocol as P
from getm_tui.runner.budget import Kind, big_shares, first_share, kind_of
from getm_tui.runner.commit import GroupCommit
from getm_tui.runner.endpoint import authkey, hang_up, socket_path
from getm_tui.runner.jobhost import SHUTDOWN_GRACE, ForwardLogs, JobHost, LiveControl, host_count
from getm_tui.runner.operations import Operations, OperationsError
from getm_tui.runner.outage import Kept, Outage, acted_upon
from getm_tui.runner.process import flush_std_streams, name_process
from getm_tui.runner.readiness import Readiness, readable

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 0.1
SUPERVISOR_NICE = 5
RECONCILE_EVERY = 1.0
# A client of the socket has this long to answer the authkey challenge; one that connects and says
# nothing must not block every later front end (the handshake used to run in the accept loop).
HANDSHAKE_TIMEOUT = 5.0
# A runner of a fleet renews its leases this many times per lease_timeout: a beat or two may be late.
BEATS_PER_LEASE = 3
LOST = "another runner took this job over (this one's lease ran out)"


@dataclass
class _Running:
    job_id: int
    name: str
    host: JobHost | None = None
    cancelled: bool = False
    control: LiveControl = field(default_factory=lambda: LiveControl(4))
    sent: tuple[int, float | None] | None = None  # the control its host was last told of
    progress: Progress | None = None
    history: collections.deque[tuple[float, int]] = field(
        default_factory=lambda: collections.deque(maxlen=40)
    )
    # Per connection: each part in flight's (time, bytes done, smoothed rate), and the rates for screens.
    parts_seen: dict[int, tuple[float, int, float | None]] = field(default_factory=dict)
    conn_rates: tuple[float, ...] = ()
    lost: bool = False  # another runner of the fleet took the job over: nothing more is written about it
    committing: bool = False  # its file is done and waits for the group commit's sync (no slot held)
    kind: Kind = "unknown"  # what its probe said: how many connections it can use (runner/budget.py)
    cap: int = 1  # the connections its share of max_connections allows (its control asks for its own)
    asked: int = 0  # what its control asked for when `cap` was shared out

    def measure(self, p: Progress) -> int:
        """Record a progress report: the job's history, and a smoothed rate per part in flight; the bytes
        fetched since the last report."""
        now = time.monotonic()
        fetched = max(0, p.done - self.progress.done) if self.progress is not None else 0
        self.history.append((now, p.done))
        rates = []
        for start, _length, done, state in p.segments:
            if state != "active":
                self.parts_seen.pop(start, None)
                continue
            seen = self.parts_seen.get(start)
            rate = None
            if seen is not None and now > seen[0]:
                instant = (done - seen[1]) / (now - seen[0])
                rate = instant if seen[2] is None else 0.7 * seen[2] + 0.3 * instant
                rates.append(rate)
            self.parts_seen[start] = (now, done, rate)
        self.conn_rates = tuple(rates)
        self.progress = p
        return fetched


class _Client:
    """One attached front end: commands are read by the supervisor loop, messages sent by a thread."""

    def __init__(self, conn: multiprocessing.connection.Connection, owner: bool) -> None:
        self.conn = conn
        self.owner = owner
        self.alive = True
        self._events: _queue.Queue[Any] = _queue.Queue(maxsize=10_000)
        self._snapshot: P.Snapshot | None = None
        # Messages handed to send() and not yet written (a snapshot counts once, however often replaced):
        # what flush() waits on.
        self._unsent = 0
        self._sent_all = threading.Condition()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._send_loop, daemon=True, name="client-sender")
        self._thread.start()

    def send(self, msg: Any) -> None:
        with self._sent_all:
            if isinstance(msg, P.Snapshot):
                if self._snapshot is None:
                    self._unsent += 1
                self._snapshot = msg  # a newer snapshot replaces one not yet sent
            else:
                with contextlib.suppress(_queue.Full):
                    self._events.put_nowait(msg)
                    self._unsent += 1
        self._wake.set()

    def _send_loop(self) -> None:
        while self.alive:
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                while True:
                    try:
                        msg = self._events.get_nowait()
                    except _queue.Empty:
                        break
                    self.conn.send(msg)
                    self._written()
                with self._sent_all:
                    snap, self._snapshot = self._snapshot, None
                if snap is not None:
                    self.conn.send(snap)
                    self._written()
            except (OSError, EOFError, ValueError):
                self.alive = False
                with self._sent_all:
                    self._sent_all.notify_all()

    def _written(self) -> None:
        with self._sent_all:
            self._unsent -= 1
            if not self._unsent:
                self._sent_all.notify_all()

    def flush(self, timeout: float = 1.0) -> None:
        """Wait until everything sent so far is written (or the front end is gone, or `timeout`)."""
        self._wake.set()
        with self._sent_all:
            self._sent_all.wait_for(lambda: not self.alive or not self._unsent, timeout)

    def close(self) -> None:
        self.alive = False
        self._wake.set()
        with contextlib.suppress(OSError):
            self.conn.close()


def _partial_exists(rec: dict[str, Any] | None, job: Job) -> bool:
    name = control.claimed_name(rec, job.url)
    return name is not None and os.path.exists(part_path(os.path.join(job.directory, name)))


class Supervisor:
    def __init__(self, data_dir: str, settings: Settings, once: bool = False, listen: bool = True) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.once = once
        self.listen = listen
        self.lock = SupervisorLock(data_dir)
        self.running: dict[int, _Running] = {}
        self.logs: _queue.Queue[tuple[int | None, int, str]] = _queue.Queue(maxsize=100_000)
        self.clients: list[_Client] = []
        self._joining: _queue.Queue[_Client] = _queue.Queue()
        self.stop = threading.Event()
        self.failed = 0
        self.done = 0
        self.rate_limit = settings.rate_limit
        self._hosts: list[JobHost] = []
        # During one of the loop's transactions (_turn), what must wait for its commit: a host's "saved"
        # (the engine goes on to create or rename files on the strength of it), a job's "run", and news
        # for front ends (they read the queue when they hear it).
        self._held: list[tuple[JobHost, H.ToHost] | tuple[None, Any]] | None = None
        self._readiness = Readiness()
        self._commits = GroupCommit()
        self._listener: multiprocessing.connection.Listener | None = None
        self._data_version = -1
        self._reconciled = 0.0
        self._snapshot_at = 0.0
        # A fleet (several runners on a PostgreSQL queue): leases to renew, and what to count for others.
        self.fleet = False
        self._beat_at = 0.0
        self._fetched = 0
        self._finished = 0
        self.ops = Operations(settings, data_dir, self._log_nowait)
        # The fleet's database went away: what is kept for it, and the messages of the turn under way
        # (written again when it is back, if the turn's transaction was lost with the connection).
        self._outage: Outage | None = None
        self._taken: list[Kept] = []
        self._takeover_after = 0.0
        # A fleet's news from the database (a job added or steered elsewhere): the loop waits on it too.
        self._notices: Any = None

    # -- life cycle -------------------------------------------------------------------------------

    def serve(self, owner: multiprocessing.connection.Connection | None = None) -> int:
        try:
            self.lock.acquire()
        except QueueBusy as e:
            if owner is not None:
                self.clients.append(_Client(owner, owner=True))
            self._broadcast(P.Busy(e.pid))
            self._flush_clients()
            return 2
        # First, while this process has one thread: then the hosts are forked, not spawned (see JobHost).
        self._hosts = [JobHost(self.settings, i) for i in range(host_count(self.settings.max_active))]
        if owner is not None:
            self.clients.append(_Client(owner, owner=True))
        handler = ForwardLogs(self._log_nowait)
        logging.getLogger("getm_tui").addHandler(handler)
        try:
            # Checked as it opens: a damaged file is backed up and rebuilt here, before any job runs.
            self.q: JobQueue = open_queue(
                self.settings.queue or self.data_dir,
                timeout_ms=int(self.settings.queue_timeout * 1000),
                recover=True,
            )
            self.fleet = self.q.join_fleet(self.data_dir, self.settings.lease_timeout)
            self._notices = self.q.listen()
            for job_id in self.q.requeue_active():
                log.info("job %d was left active by a stopped supervisor: queued again", job_id)
            self.ops.start()
            if self.listen:
                self._start_listener()
            self._broadcast(self._hello())
            self._loop()
        except QueueCorrupt as e:  # found while running: stop; the next start backs it up and rebuilds it
            self._broadcast(P.Fatal(f"{e}; stopped: run getm-tui again to keep the jobs that can be read"))
            self._flush_clients()
            return 2
        except (QueueError, OperationsError) as e:
            self._broadcast(P.Fatal(str(e)))
            self._flush_clients()
            return 2
        finally:
            self._shutdown()
            self._stop_listening()
            logging.getLogger("getm_tui").removeHandler(handler)
            if hasattr(self, "q"):
                with contextlib.suppress(sqlite3.Error):
                    self.q.close()  # the last connection checkpoints the WAL into the file
            self.lock.release()
        return 0

    def _loop(self) -> None:
        while not self.stop.is_set():
            # No wait while a look at the queue is due (at the start, after a job ends or a command).
            self._read_commands(0.0 if self._reconciled == 0.0 else 0.05)
            self.ops.committed()
            self._drain_logs()
            self._record_synced()
            now = time.monotonic()
            try:
                if self._outage is not None and self._outage.back.is_set():
                    self._come_back()
                if self._outage is None:
                    self._look(now)
                if self.once and self._outage is None and not self.running and self._nothing_left():
                    break
            except QueueUnreachable as e:
                self._go_offline(e, [])
            if now - self._snapshot_at >= SNAPSHOT_EVERY:
                self._snapshot_at = now
                self._broadcast(self._snapshot())
            if any(c.owner for c in self.clients) and not any(c.owner and c.alive for c in self.clients):
                log.info("the front end that started the supervisor is gone: stopping")
                break
        self._drain_logs()

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
        if self.fleet and now - self._beat_at >= self.settings.lease_timeout / BEATS_PER_LEASE:
            self._beat_at = now
            self._beat()

    def _nothing_left(self) -> bool:
        """For `run --once`: nothing queued; in a fleet, nothing active anywhere either (a job another
        runner holds may yet come back to the queue, when its runner stops renewing its lease)."""
        if not self.fleet:
            return not self.q.next_runnable(1)
        counts = self.q.counts()
        return not counts["queued"] and not counts["active"]

    def _beat(self) -> None:
        """Renew this runner's leases, stop the jobs another runner took over, and take over the jobs of
        runners whose leases ran out."""
        fetched, finished, self._fetched, self._finished = self._fetched, self._finished, 0, 0
        for job_id in self.q.heartbeat(fetched, finished):
            r = self.running.get(job_id)
            if r is not None:
                self._lost(r)
        # Just back from an outage, the other runners have a lease's time to renew theirs first.
        taken = self.q.requeue_active() if time.monotonic() >= self._takeover_after else []
        for job_id in taken:
            log.info("job %d: its runner stopped renewing its lease: queued again", job_id)
        if taken:
            self._reconciled = 0.0

    # -- when the database goes away ---------------------------------------------------------------

    def _go_offline(self, e: QueueUnreachable, kept: list[Kept]) -> None:
        """Keep downloading what this runner holds, keep what cannot be written, and connect again; a
        queue one supervisor runs alone (a file) has nothing to wait for."""
        if not self.fleet:
            raise e
        if self._outage is not None:
            self._outage.close()
            kept = [*self._outage.kept, *kept]
        log.warning("%s: the jobs held go on; connecting again", e)
        self._stop_listening()
        self._outage = Outage(self.q.reconnect, kept)
        for k in kept:
            if isinstance(k.msg, H.Save) and not k.answered and not acted_upon(k.msg.record):
                k.answered = True
                k.host.send(H.Saved(k.msg.job_id, None))

    def _come_back(self) -> None:
        """The database answers again: renew the leases (learning which jobs another runner took over
        meanwhile), then write what was kept, in one transaction, as it would have been written."""
        assert self._outage is not None
        outage, self._outage = self._outage, None
        outage.close()
        try:
            self._takeover_after = time.monotonic() + self.settings.lease_timeout
            self._beat_at = time.monotonic()
            self._beat()
            self._notices = self.q.listen()
            with self._turn():
                for k in outage.kept:
                    self._write_kept(k)
        except QueueUnreachable as e:
            self._go_offline(e, outage.kept)
            return
        log.info("the queue database is back: wrote what was kept (%d)", len(outage.kept))
        self._reconciled = 0.0

    def _write_kept(self, k: Kept) -> None:
        if isinstance(k.msg, H.Log):
            if k.msg.job_id is not None:
                self._log_event(k.msg.job_id, k.msg.level, k.msg.text)
        elif isinstance(k.msg, H.Save):
            self._save(k.host, k.msg, answer=not k.answered)
        else:
            self._from_host(k.host, k.msg)

    def _keep(self, host: JobHost, msg: H.Save | H.Probe | H.End) -> None:
        """While the database is away: a progress record is answered now, the rest when it is written."""
        assert self._outage is not None
        answered = isinstance(msg, H.Save) and not acted_upon(msg.record)
        if answered:
            host.send(H.Saved(msg.job_id, None))
        self._outage.keep(host, msg, answered)

    def _ending(self) -> set[int]:
        """Jobs still in `running` whose host told of their end: in the turn under way (they leave at its
        commit), or kept while the database is away."""
        told = self._outage.kept if self._outage is not None else self._taken
        return {k.msg.job_id for k in told if isinstance(k.msg, H.End)}

    def _unended(self) -> bool:
        """Whether a job this runner holds has not ended yet."""
        return bool(self.running.keys() - self._ending())

    def _last_chance(self) -> None:
        """Stopping while the database is away: one more try to write what was kept; else say what is
        lost (the records written before the outage stay, and the next holder resumes from them)."""
        if self._outage is None:
            return
        self._outage.close()
        with contextlib.suppress(QueueError):
            self.q.reconnect()
            self._outage.back.set()
            self._come_back()
        if self._outage is not None:
            log.warning(
                "stopping with the queue database away: %d writes not recorded", len(self._outage.kept)
            )
            self._outage.close()
            raise QueueUnreachable("the queue database is away")

    def _heard(self) -> None:
        """Another process added or steered jobs: look at the queue now."""
        if self._notices is not None and self._notices.heard():
            self._data_version = -1
        if self._notices is not None and self._notices.closed:
            self._notices = None  # lost with the database: the runner's own connection finds out

    def _stop_listening(self) -> None:
        if self._notices is not None:
            self._notices.close()
            self._notices = None

    def _lost(self, r: _Running) -> None:
        """Another runner holds the job now: stop it here, and write nothing more about it (its partial
        file stays: on a shared directory it is the new holder's)."""
        if r.lost:
            return
        r.lost = True
        log.warning("job %d: %s: stopped here", r.job_id, LOST)
        self._cancel(r)

    def _shutdown(self) -> None:
        """Stop fetching, record state, and go, within about two seconds."""
        for r in self.running.values():
            self._cancel(r)
        deadline = time.monotonic() + SHUTDOWN_GRACE
        if hasattr(self, "q"):
            with contextlib.suppress(QueueError):  # a damaged or locked file must not hide why we stop
                # The hosts' last words: each cancelled job saves its progress and ends.
                while self._unended() and time.monotonic() < deadline:
                    self._wait_hosts(max(0.0, deadline - time.monotonic()), [self._commits.wakeup])
                    self._record_synced()
                self._last_chance()
                for job_id in list(self.running):
                    # A job that did not end in time: its progress is saved as it goes.
                    self.q.unclaim(job_id)
                if self.fleet:  # what it did since its last beat counts too
                    self.q.heartbeat(self._fetched, self._finished)
                    self.q.leave_fleet()
            # Hooks of the last jobs run to their end when the queue ran out, not when told to stop.
            self.ops.close(None if self.once and not self.stop.is_set() else SHUTDOWN_GRACE)
            self._drain_logs()
        for host in self._hosts:
            host.stop(timeout=1.0)
        self._commits.close()
        self._take_joining()
        self._broadcast(P.Finished(self.failed, self.done))
        self._flush_clients()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            with contextlib.suppress(OSError):
                os.unlink(socket_path(self.data_dir))
        for c in self.clients:
            c.close()

    def _flush_clients(self) -> None:
        for c in self.clients:
            c.flush()

    # -- front ends -------------------------------------------------------------------------------

    def _start_listener(self) -> None:
        path = socket_path(self.data_dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        old = os.umask(0o077)
        try:
            # No authkey here: _handshake checks it per connection, in a thread of its own.
            self._listener = multiprocessing.connection.Listener(path, family="AF_UNIX")
            authkey(self.data_dir)  # created now, owner-only, before anyone can connect
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        threading.Thread(target=self._accept_loop, daemon=True, name="listener").start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self.stop.is_set():
            try:
                conn = self._listener.accept()
            except (OSError, EOFError):
                if self.stop.is_set() or self._listener is None:
                    return
                continue
            threading.Thread(target=self._handshake, args=(conn,), daemon=True, name="handshake").start()

    def _handshake(self, conn: multiprocessing.connection.Connection) -> None:
        """The authkey challenge, both ways, as Listener(authkey=...) does it, but bounded in time."""
        key = authkey(self.data_dir)
        timer = threading.Timer(HANDSHAKE_TIMEOUT, hang_up, args=(conn,))
        timer.daemon = True
        timer.start()
        try:
            multiprocessing.connection.deliver_challenge(conn, key)
            multiprocessing.connection.answer_challenge(conn, key)
        except multiprocessing.AuthenticationError:
            log.warning("refused a connection to the supervisor socket: wrong authkey")
            conn.close()
            return
        except (OSError, EOFError, ValueError):
            conn.close()  # hung up, or said nothing in time
            return
        finally:
            timer.cancel()
        if self.stop.is_set():
            conn.close()
            return
        client = _Client(conn, owner=False)
        client.send(self._hello())
        self._joining.put(client)  # the loop adds it: only the loop's thread changes self.clients

    def _hello(self) -> P.Hello:
        return P.Hello(os.getpid(), self.data_dir, self.settings.verify_tls)

    def _take_joining(self) -> None:
        while True:
            try:
                self.clients.append(self._joining.get_nowait())
            except _queue.Empty:
                return

    def _read_commands(self, timeout: float) -> None:
        self._take_joining()
        conns = {c.conn: c for c in self.clients if c.alive}
        notices = [self._notices] if self._notices is not None else []
        for conn in self._wait_hosts(timeout, [*conns, *notices, self._commits.wakeup]):
            if conn is self._notices:
                self._heard()
                continue
            client = conns.get(conn)
            if client is None:
                continue  # the group commit's news: the loop records it next
            try:
                while client.alive and readable(conn):
                    self._command(client, conn.recv())
            except (EOFError, OSError):
                client.alive = False
        self.clients = [c for c in self.clients if c.alive or c.owner]

    def _command(self, client: _Client, msg: Any) -> None:
        """A front end's command. The queue writes are the state machine's (getm_tui.queue.states), as
        for the verbs; what only the supervisor can do (stop a running job, tell its host of a change) is
        done here or by the next look at the queue. What the queue refuses is told to that front end."""
        q = self.q
        if self._outage is not None and not isinstance(msg, (P.Shutdown, P.Detach)):
            client.send(P.LogLine(logging.WARNING, "the queue database is away: not done, try again"))
            return
        try:
            if isinstance(msg, P.Shutdown):
                self.stop.set()
            elif isinstance(msg, P.Detach):
                client.close()
            elif isinstance(msg, (P.Pause, P.Resume, P.Retry)):
                self._steer(client, _TRANSITION_OF[type(msg)], msg.ids)
            elif isinstance(msg, P.SetURL):
                outcome = q.set_url(msg.id, msg.url)
                if outcome.message:
                    client.send(P.LogLine(logging.WARNING, outcome.message))
            elif isinstance(msg, P.Remove):
                self._remove(client, msg)
            elif isinstance(msg, P.SetConcurrency):
                n = q.set_concurrency(msg.id, msg.concurrency)
                if msg.id in self.running:
                    self.running[msg.id].control.concurrency = n
                    self._tell_control(self.running[msg.id])
            elif isinstance(msg, P.SetPriority):
                q.set_priority(msg.id, msg.priority)
            elif isinstance(msg, P.Wake):
                self._data_version = -1
        except UnknownJob as e:
            client.send(P.LogLine(logging.WARNING, str(e)))
        self._reconciled = 0.0

    def _steer(self, client: _Client, transition: Transition, ids: tuple[int, ...]) -> None:
        """Pause, resume or retry; a running job that is no longer active is stopped by the next look."""
        for outcome in self.q.apply(transition, ids):
            if outcome.message:
                client.send(P.LogLine(logging.WARNING, outcome.message))

    def _remove(self, client: _Client, msg: P.Remove) -> None:
        """A job this runs is canceled (its host stops it, then _stopped deletes it); others go now."""
        for removal in self.q.remove(msg.ids, msg.delete_file, running=self.running):
            if removal.handed_over:
                continue
            for path, e in delete_files(removal.files):
                client.send(P.LogLine(logging.WARNING, f"cannot delete {path}: {e.strerror or e}"))
            self._broadcast(P.JobChanged(removal.job_id, "removed"))

    def _broadcast(self, msg: Any) -> None:
        if self._held is not None:
            self._held.append((None, msg))
            return
        for c in self.clients:
            if c.alive:
                c.send(msg)

    # -- jobs -------------------------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Bring running jobs in line with the queue, and start what may start."""
        with self._turn():
            self._reconcile_now()

    def _reconcile_now(self) -> None:
        if self.running:
            seen = self.q.running_rows(tuple(self.running))
            for job_id, r in list(self.running.items()):
                row = seen.get(job_id)
                if row is None or row.state != "active":  # paused, canceled (removed), or gone
                    self._cancel(r)
                if row and row.concurrency:
                    r.control.concurrency = int(row.concurrency)
                    self._tell_control(r)
        if self.stop.is_set():
            return
        free = self.settings.max_active - sum(not r.committing for r in self.running.values())
        if free <= 0:
            return
        for job in self.q.claim_runnable(free, exclude=tuple(self.running)):
            r = _Running(job.id, job.display_name)
            r.control = LiveControl(job.concurrency or self.settings.concurrency)
            self.running[job.id] = r
            self._share_rate()
            self._start(r, job)
            self._broadcast(P.JobChanged(job.id, "active"))

    def _start(self, r: _Running, job: Job) -> None:
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
        self._after_commit(host, H.Run(job, record, *r.sent))

    def _jobs_of(self, host: JobHost) -> list[_Running]:
        return [r for r in self.running.values() if r.host is host]

    def _cancel(self, r: _Running) -> None:
        """Ask the job's host to stop it (paused, removed, shutdown); it saves its progress and ends."""
        if r.cancelled:
            return
        r.cancelled = True
        if r.host is not None:
            r.host.send(H.Cancel(r.job_id))

    def _tell_control(self, r: _Running) -> None:
        if r.host is None:
            return  # not started yet, or done and waiting for its sync
        if r.kind == "big" and r.asked != r.control.concurrency:
            self._share_rate()  # a front end changed what it asks for: share again (calls this again)
            return
        now = (min(r.control.concurrency, r.cap), r.control.rate_limit)
        if now != r.sent:
            r.sent = now
            r.host.send(H.Control(r.job_id, *now))

    def _share_rate(self) -> None:
        """Share the rate limit among the running jobs, and max_connections among the big ones."""
        wanted = {r.job_id: r.control.concurrency for r in self.running.values() if not r.committing}
        kinds = {r.job_id: r.kind for r in self.running.values()}
        for job_id, connections in big_shares(wanted, kinds, self.settings.max_connections).items():
            self.running[job_id].cap, self.running[job_id].asked = connections, wanted[job_id]
        share = self.rate_limit / len(self.running) if self.rate_limit and self.running else None
        for r in self.running.values():
            r.control.rate_limit = share
            self._tell_control(r)

    # -- what hosts say ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """The queue writes of one turn of the loop in one transaction (a queue of small files asked for
        six commits per job), and the messages that depend on them after its commit. On a database error
        the hosts waiting on a save hear of it, and the jobs not yet sent are forgotten."""
        if self._held is not None:
            yield
            return
        self._held = []
        try:
            with self.q.batch():
                yield
        except QueueError as e:
            held, self._held = self._held, None
            for host, msg in held:
                if isinstance(e, QueueUnreachable) and self.fleet and isinstance(msg, H.Saved):
                    continue  # kept, and answered by _go_offline
                if host is not None and isinstance(msg, H.Saved):
                    host.send(H.Saved(msg.job_id, str(e)))
                elif host is not None and isinstance(msg, H.Run):
                    self.running.pop(msg.job.id, None)
            raise
        held, self._held = self._held, None
        to_hosts: dict[JobHost, list[H.ToHost]] = {}
        for host, msg in held:
            if host is None and callable(msg):
                msg()
            elif host is None:
                self._broadcast(msg)
            else:
                to_hosts.setdefault(host, []).append(msg)
        for host, msgs in to_hosts.items():
            # One write per host and turn: each write wakes the host, and a turn that read several of
            # its saves answers them all.
            host.send(msgs[0] if len(msgs) == 1 else H.Batch(msgs))  # a dead host is found by the loop

    def _after_commit(self, host: JobHost, msg: H.ToHost) -> None:
        if self._held is None:
            host.send(msg)
        else:
            self._held.append((host, msg))

    def _wait_hosts(self, timeout: float, others: list[Any] | None = None) -> list[Any]:
        """Wait up to `timeout` for a host (or one of the `others` connections) to have something to read;
        read what the hosts sent, and return the `others` that are ready."""
        hosts = {h.conn: h for h in self._hosts if h.alive}
        if not hosts and others is None:
            return []  # nothing to wait for (the main loop, which passes its clients, waits out its turn)
        try:
            ready = self._readiness.ready([*(others or ()), *hosts], timeout)
        except OSError:
            ready = []
        self._read_hosts([hosts[c] for c in ready if c in hosts])
        return [c for c in ready if c not in hosts]

    def _read_hosts(self, hosts: list[JobHost]) -> None:
        if not hosts:
            return
        if self._outage is not None:
            for host in hosts:
                self._read_host(host)
            return
        self._taken = []
        try:
            with self._turn():
                for host in hosts:
                    self._read_host(host)
        except QueueUnreachable as e:
            self._go_offline(e, self._taken)

    def _read_host(self, host: JobHost) -> None:
        try:
            while host.alive and readable(host.conn):
                self._from_host(host, host.conn.recv())
        except (EOFError, OSError):
            self._host_lost(host)

    def _from_host(self, host: JobHost, msg: H.FromHost) -> None:
        if isinstance(msg, H.Log):
            self._log_nowait((msg.job_id, msg.level, msg.text))
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
            self._keep(host, msg)
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
                self._reconciled = 0.0
                self._commits.add(r.job_id, msg.payload, msg.payload.path)
            else:
                self._ended(r, msg.kind, msg.payload, msg.reason)

    def _save(self, host: JobHost, msg: H.Save, answer: bool = True) -> None:
        """Write a job's resume record; the host hears of it after the commit (unless it already has)."""
        r = self.running.get(msg.job_id)
        self.q.save_resume(msg.job_id, msg.record)
        if self.fleet and not self.q.holds(msg.job_id):
            # Not saved: the engine must not go on (create or rename files) on the strength of it.
            if answer:
                self._after_commit(host, H.Saved(msg.job_id, LOST))
            if r is not None:
                self._lost(r)
        elif answer:
            self._after_commit(host, H.Saved(msg.job_id, None))

    def _host_lost(self, host: JobHost) -> None:
        """A host died (killed, out of memory, a crash in C): its jobs end, and the next job starts a
        new host if no other is left."""
        host.alive = False
        host.process.join(1.0)
        code = host.process.exitcode
        log.warning("a job host stopped unexpectedly (exit code %s)", code)
        ended = self._ending()
        for r in self._jobs_of(host):
            if r.job_id in ended:
                continue
            if r.cancelled:
                self._from_host(host, H.End(r.job_id, "cancelled", None))
            else:
                error = f"internal error: the process running this job stopped (exit code {code})"
                self._from_host(host, H.End(r.job_id, "failed", error))

    def _log_nowait(self, item: tuple[int | None, int, str]) -> None:
        with contextlib.suppress(_queue.Full):
            self.logs.put_nowait(item)

    def _ended(self, r: _Running, kind: H.EndKind, payload: Finished | str | None, reason: str = "") -> None:
        """Record how a job ended (see hostmsg.End); it leaves `running` once that is committed (a
        transaction lost with the database is written again, and must find the job still there)."""
        q = self.q
        if r.lost:  # its record is another runner's now: this one's end changes nothing there
            self._broadcast(P.JobChanged(r.job_id, "lost", LOST))
        elif isinstance(payload, Finished):
            q.finish(r.job_id, payload)
            self._broadcast(P.JobChanged(r.job_id, "done", payload.verdict))
        elif isinstance(payload, str):
            job = q.get(r.job_id)
            # Bytes are kept only if the partial file the record names is still there (a full disk
            # or a mismatch removes it): otherwise say that nothing is kept.
            kept = _partial_exists(q.load_resume(r.job_id), job)
            q.fail(r.job_id, payload, mismatch=kind == "mismatch", kept=kept)
            self._broadcast(P.JobChanged(r.job_id, "failed", payload))
        else:
            self._stopped(r)
        self.ops.job_ended(r.job_id, kind, payload, reason, lambda: q.get(r.job_id))
        if self._held is None:
            self._forget(r, payload)
        else:
            self._held.append((None, lambda: self._forget(r, payload)))

    def _forget(self, r: _Running, payload: Finished | str | None) -> None:
        """The job's end is recorded: count it, and free its slot."""
        self.running.pop(r.job_id, None)
        self._reconciled = 0.0  # a slot is free: look for the next job now
        self._share_rate()
        if r.lost:
            return
        if isinstance(payload, Finished):
            self.done += 1
            self._finished += 1
        elif isinstance(payload, str):
            self.failed += 1

    def _record_synced(self) -> None:
        """Record the jobs whose files the group commit has synced, in one transaction begun after the
        sync returned (runner/commit.py); a job removed meanwhile goes as a removed job goes."""
        synced = self._commits.take()
        if not synced:
            return
        with self._turn():
            for job_id, payload, error in synced:
                r = self.running.get(job_id)
                if r is None:
                    continue
                if error is not None:
                    self._ended(r, "failed", error)
                elif r.cancelled and self.q.get(job_id).state == "canceled":
                    self._ended(r, "cancelled", None)
                else:
                    self._ended(r, "done", payload)

    def _stopped(self, r: _Running) -> None:
        q = self.q
        try:
            job = q.get(r.job_id)
        except QueueUnreachable:
            raise
        except QueueError:
            return
        if job.state == "canceled":
            for path, e in delete_files(files_of_removal(job, bool(job.info.get("delete_file")))):
                log.warning("cannot delete %s: %s", path, e.strerror or e)
            q.delete(r.job_id)
            self._broadcast(P.JobChanged(r.job_id, "removed"))
        elif job.state == "active":
            q.unclaim(r.job_id)
            self._broadcast(P.JobChanged(r.job_id, "queued"))
        else:
            self._broadcast(P.JobChanged(r.job_id, job.state))

    def _drain_logs(self) -> None:
        while True:
            try:
                job_id, level, message = self.logs.get_nowait()
            except _queue.Empty:
                return
            if job_id is not None and level >= logging.INFO:
                if self._outage is not None:
                    self._outage.keep(None, H.Log(job_id, level, message))
                else:
                    try:
                        self._log_event(job_id, level, message)
                    except QueueUnreachable as e:
                        self._go_offline(e, [Kept(None, H.Log(job_id, level, message))])
            if level >= logging.INFO:
                prefix = f"job {job_id}: " if job_id is not None else ""
                self._broadcast(P.LogLine(level, prefix + message))

    def _log_event(self, job_id: int, level: int, message: str) -> None:
        """A line of the job's history (one the queue refuses is left out, unless the database is away)."""
        try:
            self.q.log_event(job_id, "warning" if level >= logging.WARNING else "info", message)
        except QueueUnreachable:
            raise
        except QueueError:
            pass

    def _snapshot(self) -> P.Snapshot:
        jobs = []
        total = 0.0
        for r in self.running.values():
            p = r.progress
            rate = _rate(r.history)
            total += rate
            if p is None:
                jobs.append(P.LiveJob(r.job_id, r.name, None, 0, 0.0, 0, r.control.concurrency, 0, 0, 0))
                continue
            jobs.append(
                P.LiveJob(
                    r.job_id,
                    r.name,
                    p.size,
                    p.done,
                    rate,
                    p.connections,
                    r.control.concurrency,
                    p.parts_done,
                    p.parts_total,
                    p.retries,
                    tuple(p.segments),
                    r.conn_rates,
                )
            )
        return P.Snapshot(time.time(), tuple(jobs), total, self.rate_limit)


_TRANSITION_OF: dict[type, Transition] = {
    P.Pause: TRANSITIONS["pause"],
    P.Resume: TRANSITIONS["resume"],
    P.Retry: TRANSITIONS["retry"],
}


def _rate(history: collections.deque[tuple[float, int]], window: float = 2.0) -> float:
    """Bytes per second over the last `window` seconds of progress samples."""
    if len(history) < 2:
        return 0.0
    t1, d1 = history[-1]
    if time.monotonic() - t1 > window:
        return 0.0
    t0, d0 = next((t, d) for t, d in history if t1 - t <= window)
    return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0


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
    # (module by module, with nothing left to flush) would only keep the front end waiting, for about
    # 30 ms at the end of every `run --once`.
    flush_std_streams()
    os._exit(code)
