"""What each running job may use, as the supervisor tells its host: its share of the rate limit, and of
max_connections for a big file (budget.py). Functions of the supervisor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from getm_tui.runner import hostmsg as H
from getm_tui.runner.budget import big_shares
from getm_tui.runner.running import Running

if TYPE_CHECKING:
    from getm_tui.runner.supervisor import Supervisor


def tell_control(sup: Supervisor, r: Running) -> None:
    """Tell the job's host what the job may use now, if that changed."""
    if r.host is None:
        return  # not started yet, or done and waiting for its sync
    if r.kind == "big" and r.asked != r.control.concurrency:
        share_out(sup)  # a front end changed what it asks for: share again (calls this again)
        return
    now = (min(r.control.concurrency, r.cap), r.control.rate_limit)
    if now != r.sent:
        r.sent = now
        r.host.send(H.Control(r.job_id, *now))


def share_out(sup: Supervisor) -> None:
    """Share the rate limit among the running jobs, and max_connections among the big ones. A queue of
    small files starts and ends a job every millisecond or so, and calls this each time: with no rate
    limit and no big file, now or at the last call, there is nothing to share and it returns at once."""
    running = sup.running
    shared = bool(sup.rate_limit) or any(r.kind == "big" for r in running.values())
    if not shared and not sup.shared:
        return
    sup.shared = shared
    wanted = {r.job_id: r.control.concurrency for r in running.values() if not r.committing}
    kinds = {r.job_id: r.kind for r in running.values()}
    for job_id, connections in big_shares(wanted, kinds, sup.settings.max_connections).items():
        running[job_id].cap, running[job_id].asked = connections, wanted[job_id]
    share = sup.rate_limit / len(running) if sup.rate_limit and running else None
    for r in running.values():
        r.control.rate_limit = share
        tell_control(sup, r)
