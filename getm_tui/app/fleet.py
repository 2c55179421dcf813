"""The app on a fleet's queue (PostgreSQL), from a laptop: it watches and steers, and runs nothing.

No runner starts here and no socket reaches one: a command is the queue's own write, as the verbs make it,
and the runner holding the job hears of it through the database (LISTEN/NOTIFY). What runs is read from
the queue too: each running job's recorded bytes, and the runners' table, for the runners panel and the
throughput.
"""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.message import Message

from getm_tui import humanize
from getm_tui.queue.errors import QueueError
from getm_tui.queue.interface import JobQueue, open_queue
from getm_tui.queue.records import RunnerInfo
from getm_tui.queue.removal import delete_files
from getm_tui.queue.states import TRANSITIONS
from getm_tui.runner import protocol as P

# How often the runners' table is read (a runner renews its heartbeat a few times per lease timeout).
RUNNERS_EVERY = 1.0

_ACTIONS: dict[type, str] = {P.Pause: "pause", P.Resume: "resume", P.Retry: "retry"}


class RunnersSeen(Message):
    """The fleet's runners, as the poller read them."""

    def __init__(self, runners: list[RunnerInfo], now: float) -> None:
        super().__init__()
        self.runners = runners
        self.now = now  # when they were read: how long ago each beat is counted from it


def steer(q: JobQueue, msg: Any) -> list[str]:
    """A front end's command (a protocol message) as the queue's write; what could not be done, one line
    each."""
    if type(msg) in _ACTIONS:
        return [o.message for o in q.apply(TRANSITIONS[_ACTIONS[type(msg)]], msg.ids) if o.message]
    if isinstance(msg, P.Remove):
        removals = q.remove(msg.ids, msg.delete_file)
        return [f"cannot delete {path}: {e.strerror or e}" for path, e in delete_files(
            [path for r in removals for path in r.files])]  # fmt: skip
    if isinstance(msg, P.SetConcurrency):
        q.set_concurrency(msg.id, msg.concurrency)
    elif isinstance(msg, P.SetPriority):
        q.set_priority(msg.id, msg.priority)
    return []


def fleet_rate(runners: list[RunnerInfo]) -> float:
    """The fleet's throughput: what the live runners fetched over their last heartbeat."""
    return sum(r.rate for r in runners if r.status == "alive")


def runners_text(runners: list[RunnerInfo], now: float) -> str:
    """The runners panel: one line per runner that has not left, the live ones first."""
    shown = sorted((r for r in runners if r.status != "stopped"), key=lambda r: (r.status != "alive", r.id))
    if not shown:
        return "no runner: start one with getm-tui run"
    lines = []
    for r in shown:
        if r.status == "alive":
            lines.append(f"{r.host}:{r.pid} alive {r.jobs_held} jobs {humanize.rate(r.rate)}")
        else:  # its jobs go to other runners once their leases run out
            lines.append(f"{r.host}:{r.pid} lost {humanize.duration(max(0.0, now - r.heartbeat))} ago")
    return "\n".join(lines)


def steer_through_database(app: App[Any], location: str, msg: Any) -> None:
    """A command on a fleet's queue, in a worker thread: written to the database, where the job's runner
    hears it; what the queue refuses is told in the app."""
    try:
        with open_queue(location) as q:
            problems = steer(q, msg)
    except QueueError as e:
        problems = [str(e)]
    for text in problems:
        app.call_from_thread(app.notify, text, severity="warning", timeout=6)
