"""How the supervisor talks with its job hosts: one turn of its loop (one queue transaction, then the
answers the hosts wait for), waiting on them and reading what they say, and the log lines they forward.
Functions of the supervisor."""

from __future__ import annotations

import contextlib
import logging
import queue as _queue
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from getm_tui.queue.errors import QueueError, QueueUnreachable
from getm_tui.queue.records import Finished
from getm_tui.queue.removal import delete_files, files_of_removal
from getm_tui.runner import hostmsg as H
from getm_tui.runner import protocol as P
from getm_tui.runner.commit import Move
from getm_tui.runner.fleet_side import lost
from getm_tui.runner.jobhost import JobHost
from getm_tui.runner.outage import Kept
from getm_tui.runner.readiness import readable
from getm_tui.runner.running import Running

if TYPE_CHECKING:
    from getm_tui.runner.supervisor import Supervisor

log = logging.getLogger("getm_tui.runner.supervisor")


@contextlib.contextmanager
def turn(sup: Supervisor) -> Iterator[None]:
    """The queue writes of one turn of the loop in one transaction (a queue of small files asked for
    six commits per job), and the messages that depend on them after its commit. On a database error
    the hosts waiting on a save hear of it, and the jobs not yet sent are forgotten."""
    if sup._held is not None:
        yield
        return
    sup._held = []
    try:
        with sup.q.batch():
            yield
    except QueueError as e:
        held, sup._held = sup._held, None
        for host, msg in held:
            if isinstance(e, QueueUnreachable) and sup.fleet and isinstance(msg, H.Saved):
                continue  # kept, and answered by _go_offline
            if host is not None and isinstance(msg, H.Saved):
                host.send(H.Saved(msg.job_id, str(e)))
            elif host is not None and isinstance(msg, H.Run):
                sup.running.pop(msg.job.id, None)
        raise
    held, sup._held = sup._held, None
    to_hosts: dict[JobHost, list[H.ToHost]] = {}
    for host, msg in held:
        if host is None and callable(msg):
            msg()
        elif host is None:
            sup._broadcast(msg)
        else:
            to_hosts.setdefault(host, []).append(msg)
    for host, msgs in to_hosts.items():
        # One write per host and turn: each write wakes the host, and a turn that read several of
        # its saves answers them all.
        host.send(msgs[0] if len(msgs) == 1 else H.Batch(msgs))  # a dead host is found by the loop


def after_commit(sup: Supervisor, host: JobHost, msg: H.ToHost) -> None:
    if sup._held is None:
        host.send(msg)
    else:
        sup._held.append((host, msg))


def when_committed(sup: Supervisor, then: Callable[[], None]) -> None:
    """Call `then` once the turn's transaction is committed (now, outside a turn)."""
    if sup._held is None:
        then()
    else:
        sup._held.append((None, then))


def wait_hosts(
    sup: Supervisor, timeout: float, others: list[Any] | None = None, fill: bool = False
) -> list[Any]:
    """Wait up to `timeout` for a host (or one of the `others` connections) to have something to read;
    read what the hosts sent, and return the `others` that are ready. With `fill` (the loop's turns,
    not the last ones of a shutdown), the slots the jobs that ended free are filled in the same
    transaction."""
    hosts = {h.conn: h for h in sup._hosts if h.alive}
    if not hosts and others is None:
        return []  # nothing to wait for (the main loop, which passes its clients, waits out its turn)
    try:
        ready = sup._readiness.ready([*(others or ()), *hosts], timeout)
    except OSError:
        ready = []
    read_hosts(sup, [hosts[c] for c in ready if c in hosts], fill)
    return [c for c in ready if c not in hosts]


def read_hosts(sup: Supervisor, hosts: list[JobHost], fill: bool = False) -> None:
    if not hosts:
        return
    if sup._outage is not None:
        for host in hosts:
            read_host(sup, host)
        return
    sup._taken = []
    try:
        with turn(sup):
            for host in hosts:
                read_host(sup, host)
            if fill:  # their Runs go with this turn's answers, one write per host
                sup._fill_freed()
    except QueueUnreachable as e:
        sup._go_offline(e, sup._taken)


def read_host(sup: Supervisor, host: JobHost) -> None:
    try:
        while host.alive and readable(host.conn):
            msg = host.conn.recv()
            for one in msg.messages if isinstance(msg, H.Several) else (msg,):
                sup._from_host(host, one)
    except (EOFError, OSError):
        sup._host_lost(host)


def log_nowait(sup: Supervisor, item: tuple[int | None, int, str]) -> None:
    with contextlib.suppress(_queue.Full):
        sup.logs.put_nowait(item)


def drain_logs(sup: Supervisor) -> None:
    while True:
        try:
            job_id, level, message = sup.logs.get_nowait()
        except _queue.Empty:
            return
        if job_id is not None and level >= logging.INFO:
            if sup._outage is not None:
                sup._outage.keep(None, H.Log(job_id, level, message))
            else:
                try:
                    log_event(sup, job_id, level, message)
                except QueueUnreachable as e:
                    sup._go_offline(e, [Kept(None, H.Log(job_id, level, message))])
        if level >= logging.INFO:
            prefix = f"job {job_id}: " if job_id is not None else ""
            sup._broadcast(P.LogLine(level, prefix + message))


def log_event(sup: Supervisor, job_id: int, level: int, message: str) -> None:
    """A line of the job's history (one the queue refuses is left out, unless the database is away)."""
    try:
        sup.q.log_event(job_id, "warning" if level >= logging.WARNING else "info", message)
    except QueueUnreachable:
        raise
    except QueueError:
        pass


def record_synced(sup: Supervisor) -> None:
    """Record the jobs whose files the group commit has synced, in one transaction begun after the
    sync returned (runner/commit.py); a job removed meanwhile goes as a removed job goes."""
    synced = sup._commits.take()
    if not synced:
        return
    with turn(sup):
        for job_id, payload, error in synced:
            r = sup.running.get(job_id)
            if r is None:
                continue
            if error is not None:
                sup._ended(r, "failed", error)
            elif r.cancelled and sup.q.get(job_id).state == "canceled":
                sup._ended(r, "cancelled", None)
            else:
                sup._ended(r, "done", payload)


def to_commit(sup: Supervisor, r: Running, payload: Finished, pending: dict[str, Any] | None) -> None:
    """Hand a finished file to the group commit; one still at its partial name only once its finished
    record is committed (the record comes first, then the name: engine.api._attempt's order)."""
    if pending is None:
        sup._commits.add(r.job_id, payload, payload.path)
        return
    sup.q.save_resume(r.job_id, pending)
    sup._names.saved(r.job_id)
    if sup.fleet and not sup.q.holds(r.job_id):
        lost(sup, r)  # the file is the new holder's to finish: it stays at its partial name
        sup._ended(r, "cancelled", None)
        return
    move: Move = "replace" if r.overwrite else "free"
    when_committed(sup, lambda: sup._commits.add(r.job_id, payload, payload.path, move))


def stopped(sup: Supervisor, r: Running) -> None:
    q = sup.q
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
        sup._broadcast(P.JobChanged(r.job_id, "removed"))
    elif job.state == "active":
        q.unclaim(r.job_id)
        sup._broadcast(P.JobChanged(r.job_id, "queued"))
    else:
        sup._broadcast(P.JobChanged(r.job_id, job.state))
