"""What a supervisor does as one runner of a fleet (a PostgreSQL queue): its heartbeat, a job taken over by
another runner, the database's notices, and going on when the database goes away (what cannot be written
is kept, runner/outage.py, and written when it is back). Functions of the supervisor."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

from getm_tui.queue.errors import QueueError, QueueUnreachable
from getm_tui.runner import hostmsg as H
from getm_tui.runner.jobhost import JobHost
from getm_tui.runner.outage import Kept, Outage, acted_upon

if TYPE_CHECKING:
    from getm_tui.runner.supervisor import Supervisor
from getm_tui.runner.running import LOST, Running

log = logging.getLogger("getm_tui.runner.supervisor")


def beat(sup: Supervisor) -> None:
    """Renew this runner's leases, stop the jobs another runner took over, and take over the jobs of
    runners whose leases ran out."""
    fetched, finished, sup._fetched, sup._finished = sup._fetched, sup._finished, 0, 0
    for job_id in sup.q.heartbeat(fetched, finished):
        r = sup.running.get(job_id)
        if r is not None:
            lost(sup, r)
    # Just back from an outage, the other runners have a lease's time to renew theirs first.
    taken = sup.q.requeue_active() if time.monotonic() >= sup._takeover_after else []
    for job_id in taken:
        log.info("job %d: its runner stopped renewing its lease: queued again", job_id)
    if taken:
        sup._reconciled = 0.0


# -- when the database goes away ---------------------------------------------------------------


def go_offline(sup: Supervisor, e: QueueUnreachable, kept: list[Kept]) -> None:
    """Keep downloading what this runner holds, keep what cannot be written, and connect again; a
    queue one supervisor runs alone (a file) has nothing to wait for."""
    if not sup.fleet:
        raise e
    if sup._outage is not None:
        sup._outage.close()
        kept = [*sup._outage.kept, *kept]
    log.warning("%s: the jobs held go on; connecting again", e)
    stop_listening(sup)
    # A list of its own: `kept` may be the turn's list of taken messages (sup._taken), which the writes of
    # the kept messages, when the database is back, append to.
    sup._outage = Outage(sup.q.reconnect, list(kept))
    for k in kept:
        if isinstance(k.msg, H.Save) and not k.answered and not acted_upon(k.msg.record):
            k.answered = True
            k.host.send(H.Saved(k.msg.job_id, None))


def come_back(sup: Supervisor) -> None:
    """The database answers again: renew the leases (learning which jobs another runner took over
    meanwhile), then write what was kept, in one transaction, as it would have been written."""
    assert sup._outage is not None
    outage, sup._outage = sup._outage, None
    outage.close()
    try:
        sup._takeover_after = time.monotonic() + sup.settings.lease_timeout
        sup._beat_at = time.monotonic()
        beat(sup)
        sup._notices = sup.q.listen()
        with sup._turn():
            for k in outage.kept:
                write_kept(sup, k)
    except QueueUnreachable as e:
        go_offline(sup, e, outage.kept)
        return
    log.info("the queue database is back: wrote what was kept (%d)", len(outage.kept))
    sup._reconciled = 0.0


def write_kept(sup: Supervisor, k: Kept) -> None:
    if isinstance(k.msg, H.Log):
        if k.msg.job_id is not None:
            sup._log_event(k.msg.job_id, k.msg.level, k.msg.text)
    elif isinstance(k.msg, H.Save):
        sup._save(k.host, k.msg, answer=not k.answered)
    else:
        sup._from_host(k.host, k.msg)


def keep(sup: Supervisor, host: JobHost, msg: H.Save | H.Probe | H.End) -> None:
    """While the database is away: a progress record is answered now, the rest when it is written."""
    assert sup._outage is not None
    answered = isinstance(msg, H.Save) and not acted_upon(msg.record)
    if answered:
        host.send(H.Saved(msg.job_id, None))
    sup._outage.keep(host, msg, answered)


def ending(sup: Supervisor) -> set[int]:
    """Jobs still in `running` whose host told of their end: in the turn under way (they leave at its
    commit), or kept while the database is away."""
    told = sup._outage.kept if sup._outage is not None else sup._taken
    return {k.msg.job_id for k in told if isinstance(k.msg, H.End)}


def unended(sup: Supervisor) -> bool:
    """Whether a job this runner holds has not ended yet."""
    return bool(sup.running.keys() - ending(sup))


def last_chance(sup: Supervisor) -> None:
    """Stopping while the database is away: one more try to write what was kept; else say what is
    lost (the records written before the outage stay, and the next holder resumes from them)."""
    if sup._outage is None:
        return
    sup._outage.close()
    with contextlib.suppress(QueueError):
        sup.q.reconnect()
        sup._outage.back.set()
        come_back(sup)
    if sup._outage is not None:
        log.warning("stopping with the queue database away: %d writes not recorded", len(sup._outage.kept))
        sup._outage.close()
        raise QueueUnreachable("the queue database is away")


def heard(sup: Supervisor) -> None:
    """Another process added or steered jobs: look at the queue now."""
    if sup._notices is not None and sup._notices.heard():
        sup._data_version = -1
    if sup._notices is not None and sup._notices.closed:
        sup._notices = None  # lost with the database: the runner's own connection finds out


def stop_listening(sup: Supervisor) -> None:
    if sup._notices is not None:
        sup._notices.close()
        sup._notices = None


def lost(sup: Supervisor, r: Running) -> None:
    """Another runner holds the job now: stop it here, and write nothing more about it (its partial
    file stays: on a shared directory it is the new holder's)."""
    if r.lost:
        return
    r.lost = True
    log.warning("job %d: %s: stopped here", r.job_id, LOST)
    sup._cancel(r)
