"""The supervisor's side of its front ends: the socket they attach to (a 0600 Unix socket and an authkey
challenge, each in a thread of its own, bounded in time), the commands they send, and what it tells them
(snapshots, job changes). Functions of the supervisor, kept apart from its jobs and hosts."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue as _queue
import threading
import time
from typing import TYPE_CHECKING, Any

from getm_tui.queue.errors import UnknownJob
from getm_tui.queue.removal import delete_files
from getm_tui.queue.states import TRANSITIONS, Transition
from getm_tui.runner import protocol as P
from getm_tui.runner.endpoint import authkey, hang_up, socket_path
from getm_tui.runner.readiness import readable

if TYPE_CHECKING:
    from getm_tui.runner.supervisor import Supervisor
from getm_tui.runner.clients import Client
from getm_tui.runner.running import rate_of

log = logging.getLogger("getm_tui.runner.supervisor")

# A client of the socket has this long to answer the authkey challenge; one that connects and says
# nothing must not block every later front end (the handshake used to run in the accept loop).
HANDSHAKE_TIMEOUT = 5.0


def flush_clients(sup: Supervisor) -> None:
    for c in sup.clients:
        c.flush()


# -- front ends -------------------------------------------------------------------------------


def start_listener(sup: Supervisor) -> None:
    path = socket_path(sup.data_dir)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    old = os.umask(0o077)
    try:
        # No authkey here: _handshake checks it per connection, in a thread of its own.
        sup._listener = multiprocessing.connection.Listener(path, family="AF_UNIX")
        authkey(sup.data_dir)  # created now, owner-only, before anyone can connect
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    threading.Thread(target=accept_loop, args=(sup,), daemon=True, name="listener").start()


def accept_loop(sup: Supervisor) -> None:
    assert sup._listener is not None
    while not sup.stop.is_set():
        try:
            conn = sup._listener.accept()
        except (OSError, EOFError):
            if sup.stop.is_set() or sup._listener is None:
                return
            continue
        threading.Thread(target=handshake, args=(sup, conn), daemon=True, name="handshake").start()


def handshake(sup: Supervisor, conn: multiprocessing.connection.Connection) -> None:
    """The authkey challenge, both ways, as Listener(authkey=...) does it, but bounded in time."""
    key = authkey(sup.data_dir)
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
    if sup.stop.is_set():
        conn.close()
        return
    client = Client(conn, owner=False)
    client.send(hello(sup))
    sup._joining.put(client)  # the loop adds it: only the loop's thread changes sup.clients


def hello(sup: Supervisor) -> P.Hello:
    return P.Hello(os.getpid(), sup.data_dir, sup.settings.verify_tls)


def take_joining(sup: Supervisor) -> None:
    while True:
        try:
            sup.clients.append(sup._joining.get_nowait())
        except _queue.Empty:
            return


def read_commands(sup: Supervisor, timeout: float) -> None:
    take_joining(sup)
    conns = {c.conn: c for c in sup.clients if c.alive}
    notices = [sup._notices] if sup._notices is not None else []
    for conn in sup._wait_hosts(timeout, [*conns, *notices, sup._commits.wakeup]):
        if conn is sup._notices:
            sup._heard()
            continue
        client = conns.get(conn)
        if client is None:
            continue  # the group commit's news: the loop records it next
        try:
            while client.alive and readable(conn):
                command(sup, client, conn.recv())
        except (EOFError, OSError):
            client.alive = False
    sup.clients = [c for c in sup.clients if c.alive or c.owner]


def command(sup: Supervisor, client: Client, msg: Any) -> None:
    """A front end's command. The queue writes are the state machine's (getm_tui.queue.states), as
    for the verbs; what only the supervisor can do (stop a running job, tell its host of a change) is
    done here or by the next look at the queue. What the queue refuses is told to that front end."""
    q = sup.q
    if sup._outage is not None and not isinstance(msg, (P.Shutdown, P.Detach)):
        client.send(P.LogLine(logging.WARNING, "the queue database is away: not done, try again"))
        return
    try:
        if isinstance(msg, P.Shutdown):
            sup.stop.set()
        elif isinstance(msg, P.Detach):
            client.close()
        elif isinstance(msg, (P.Pause, P.Resume, P.Retry)):
            steer(sup, client, TRANSITION_OF[type(msg)], msg.ids)
        elif isinstance(msg, P.SetURL):
            outcome = q.set_url(msg.id, msg.url)
            if outcome.message:
                client.send(P.LogLine(logging.WARNING, outcome.message))
        elif isinstance(msg, P.Remove):
            remove(sup, client, msg)
        elif isinstance(msg, P.SetConcurrency):
            n = q.set_concurrency(msg.id, msg.concurrency)
            if msg.id in sup.running:
                sup.running[msg.id].control.concurrency = n
                sup._tell_control(sup.running[msg.id])
        elif isinstance(msg, P.SetPriority):
            q.set_priority(msg.id, msg.priority)
        elif isinstance(msg, P.Wake):
            sup._data_version = -1
    except UnknownJob as e:
        client.send(P.LogLine(logging.WARNING, str(e)))
    sup._reconciled = 0.0


def steer(sup: Supervisor, client: Client, transition: Transition, ids: tuple[int, ...]) -> None:
    """Pause, resume or retry; a running job that is no longer active is stopped by the next look."""
    for outcome in sup.q.apply(transition, ids):
        if outcome.message:
            client.send(P.LogLine(logging.WARNING, outcome.message))


def remove(sup: Supervisor, client: Client, msg: P.Remove) -> None:
    """A job this runs is canceled (its host stops it, then hostio.stopped deletes it); others go now."""
    for removal in sup.q.remove(msg.ids, msg.delete_file, running=sup.running):
        if removal.handed_over:
            continue
        for path, e in delete_files(removal.files):
            client.send(P.LogLine(logging.WARNING, f"cannot delete {path}: {e.strerror or e}"))
        broadcast(sup, P.JobChanged(removal.job_id, "removed"))


def broadcast(sup: Supervisor, msg: Any) -> None:
    if sup._held is not None:
        sup._held.append((None, msg))
        return
    for c in sup.clients:
        if c.alive:
            c.send(msg)


# -- jobs -------------------------------------------------------------------------------------


def snapshot(sup: Supervisor) -> P.Snapshot:
    jobs = []
    total = 0.0
    for r in sup.running.values():
        p = r.progress
        rate = rate_of(r.history)
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
    return P.Snapshot(time.time(), tuple(jobs), total, sup.rate_limit)


TRANSITION_OF: dict[type, Transition] = {
    P.Pause: TRANSITIONS["pause"],
    P.Resume: TRANSITIONS["resume"],
    P.Retry: TRANSITIONS["retry"],
}
