"""Whether a local copy is current, and what a finished job leaves for the next pass to compare.

The record is the local file itself, as `wget -N` and `rsync -t` keep it: a mirror's job sets its file's
modification time to the remote one when it finishes (`stamp`, run by the job host), so a later pass
compares the listing's size and time with the file's, with no state beside the data to lose or to go
stale, and a file copied in by other means with its time kept counts too. A listing that gives no time
(an index page without dates) is completed by a HEAD, for the files that have a local copy only (a file
with none must be fetched whatever its facts), several at once; a job fetching such a file takes the time
from its own probe (Last-Modified), the same value the HEAD would give.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from getm_tui.engine.errors import EngineError
from getm_tui.engine.sources.http_session import HTTPSettings, Session, make_session
from getm_tui.engine.sources.index_page import head, http_time
from getm_tui.engine.sources.listing import RemoteEntry

if TYPE_CHECKING:
    from getm_tui.queue.interface import JobQueue

log = logging.getLogger(__name__)

# Seconds two modification times may differ by and be the same (a listing's or a filesystem's rounding).
MODIFY_WINDOW = 1.0
HEADS_AT_ONCE = 8
UNFINISHED = ("queued", "active", "paused")


def is_current(path: str, entry: RemoteEntry) -> bool:
    """Whether the file at `path` holds the listed file: the same size, and the same modification time
    where the listing gives one (size alone where it gives only that; never when it gives neither)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    if entry.size is not None and st.st_size != entry.size:
        return False
    if entry.modified is not None:
        return abs(st.st_mtime - entry.modified) < MODIFY_WINDOW
    return entry.size is not None


def stamp(path: str, info: dict[str, Any], last_modified: str | None) -> None:
    """After a mirror's job: its file takes the remote modification time, the listing's when it gave one,
    else its probe's Last-Modified (`info` is the job's; a job of no mirror is left alone)."""
    mirror = info.get("mirror")
    if not isinstance(mirror, dict):
        return
    when = mirror.get("mtime")
    if not isinstance(when, (int, float)):
        when = http_time(last_modified)
    if when is None:
        return
    try:
        os.utime(path, (when, when))
    except OSError as e:  # the file is complete: the next pass fetches it again, nothing worse
        log.warning("cannot set the modification time of %s: %s", path, e.strerror or e)


def complete(found: list[tuple[str, RemoteEntry]], settings: HTTPSettings) -> list[tuple[str, RemoteEntry]]:
    """The (local path, entry) pairs, with the size and time an http(s) listing did not show asked by a
    HEAD for each file that has a local copy, HEADS_AT_ONCE at a time, each thread on its own connection."""
    ask = [
        i
        for i, (path, e) in enumerate(found)
        if (e.size is None or e.modified is None)
        and e.url.split(":", 1)[0].lower() in ("http", "https")
        and os.path.exists(path)
    ]
    if not ask:
        return found
    local = threading.local()
    sessions: list[Session] = []
    guard = threading.Lock()

    def one(i: int) -> tuple[int, RemoteEntry]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = make_session(settings)
            with guard:
                sessions.append(session)
        entry = found[i][1]
        try:
            size, modified, etag = head(session, entry.url, settings)
        except EngineError:
            return i, entry  # compared on what the listing said: the job, if any, says what is wrong
        return i, replace(
            entry,
            size=entry.size if entry.size is not None else size,
            modified=entry.modified if entry.modified is not None else modified,
            etag=entry.etag or etag,
        )

    out = list(found)
    try:
        with ThreadPoolExecutor(HEADS_AT_ONCE, thread_name_prefix="getm-head") as pool:
            for i, entry in pool.map(one, ask):
                out[i] = (out[i][0], entry)
    finally:
        for session in sessions:
            session.close()
    return out


def unfinished_targets(q: JobQueue, destination: str) -> set[str]:
    """The files under `destination` that a job not yet finished (queued, running, paused) will write."""
    root = os.path.join(os.path.abspath(destination), "")
    out: set[str] = set()
    for job in q.iter_jobs(UNFINISHED):
        target = job.path or (os.path.join(job.directory, job.name) if job.name else None)
        if target and os.path.abspath(target).startswith(root):
            out.add(os.path.abspath(target))
    return out
