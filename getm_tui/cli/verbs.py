"""The queue verbs, and what every one of them shares: pause, resume, retry and rm here; add in add.py, ls
and show in show.py, runners in fleet.py.

They read and write the queue directly (no supervisor needed). Each one checks all of its input before it
changes anything, so bad input ends in one line on stderr and exit 2 with the queue as it was. Imports of the
queue and the engine are kept inside the functions so `getm-tui --help` stays quick.
"""

from __future__ import annotations

import argparse
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from getm_tui.cli.common import CONTROLS, EXIT_FAILED, EXIT_OK, fail, queue_location, queue_override, warn

if TYPE_CHECKING:
    from getm_tui.config import Settings
    from getm_tui.queue.errors import QueueCorrupt
    from getm_tui.queue.interface import JobQueue


class Usage(Exception):
    """Bad input: one line for the user, exit 2."""


def verb(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the queue's and the verbs' errors into one line and exit 2."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        from getm_tui.queue.errors import QueueCorrupt, QueueError

        try:
            return fn(args)
        except Usage as e:
            return fail(str(e))
        except QueueCorrupt as e:
            return _damaged_midway(args, e)
        except QueueError as e:
            return fail(str(e))

    return run


def _timeout_ms(args: argparse.Namespace) -> int:
    """queue_timeout from the config file or GETM_TUI_QUEUE_TIMEOUT, in the queue's milliseconds."""
    from getm_tui.config import load

    return int(load(getattr(args, "config", None)).queue_timeout * 1000)


def open_queue_of(args: argparse.Namespace, check: bool | Literal["later"] = True) -> JobQueue:
    """The queue, checked: a damaged file is backed up and rebuilt from what can be read, with a warning.
    `check="later"`: a listing that reads while the file is checked (its end waits for the verdict)."""
    from getm_tui.config import load
    from getm_tui.queue.interface import open_queue

    settings = load(getattr(args, "config", None), queue_override(args))
    location = queue_location(args, settings)
    return open_queue(location, timeout_ms=int(settings.queue_timeout * 1000), check=check, recover=True)


def check_reachable(args: argparse.Namespace, settings: Settings) -> int:
    """Before a front end starts on a database queue: 0 if it can be opened, else exit 2 after one line
    (it may be down, or the string wrong: the reason is the driver's, without the password)."""
    from getm_tui.queue.errors import QueueError
    from getm_tui.queue.interface import open_queue

    location = queue_location(args, settings)
    try:
        open_queue(location, timeout_ms=int(settings.queue_timeout * 1000)).close()
    except QueueError as e:
        return fail(str(e))
    return EXIT_OK


def _damaged_midway(args: argparse.Namespace, e: QueueCorrupt) -> int:
    """Damage found after the open: met by the command, whose transaction was rolled back, or by the check
    `ls` runs beside its listing. Recover now and ask for the command again rather than run it twice; `ls`
    has printed what it read, which may be short of the whole list."""
    from getm_tui.queue.errors import QueueError
    from getm_tui.queue.salvage import recover

    try:
        done = recover(e.path, e.ino, e.reason, _timeout_ms(args) / 1000)
    except QueueError as again:
        return fail(str(again))
    if done is not None:
        logging.getLogger(__name__).warning("%s", done.message())
    what = "the list above may be incomplete" if args.verb == "ls" else "nothing was changed"
    return fail(f"{e}; {what}: run the command again")


def clean(text: object) -> str:
    return str(text).translate(CONTROLS)


def is_fleet(q: JobQueue) -> bool:
    """A queue several runners share (PostgreSQL), whose jobs say which runner holds them."""
    from getm_tui.queue.sqlite import Queue

    return not isinstance(q, Queue)


def when(t: float | None) -> str:
    if not t:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


# -- pause, resume, retry (what each does: getm_tui.queue.states) ------------------------------------


@verb
def cmd_move(args: argparse.Namespace) -> int:
    """pause, resume and retry: the transition named by the verb, for every job given."""
    from getm_tui.queue.states import TRANSITIONS

    if getattr(args, "url", None) is not None:
        return _new_url(args)
    with open_queue_of(args) as q:
        outcomes = q.apply(TRANSITIONS[args.verb], args.ids)
    for outcome in outcomes:
        if outcome.message:
            warn(outcome.message)
    return EXIT_OK


cmd_pause = cmd_resume = cmd_retry = cmd_move


def _new_url(args: argparse.Namespace) -> int:
    """`retry ID --url NEW_URL`: the job is queued again under the new URL (states.NEW_URL), and resumes
    from its parts when the new URL names the same object."""
    from getm_tui.engine.errors import UsageError
    from getm_tui.engine.urls import validate

    if len(args.ids) != 1:
        raise Usage("--url gives one job a new URL: name one ID")
    try:
        url = validate(args.url)
    except UsageError as e:
        raise Usage(str(e)) from None
    with open_queue_of(args) as q:
        outcome = q.set_url(args.ids[0], url)
    if outcome.message:
        warn(outcome.message)
    return EXIT_OK


# -- rm -----------------------------------------------------------------------------------------------


@verb
def cmd_rm(args: argparse.Namespace) -> int:
    from getm_tui.queue.removal import delete_files

    with open_queue_of(args) as q:
        removals = q.remove(args.ids, bool(args.delete_file))
    code = EXIT_OK
    for path, e in delete_files([path for r in removals for path in r.files]):
        code = fail(f"cannot delete {path}: {e.strerror or e}", EXIT_FAILED)
    return code
