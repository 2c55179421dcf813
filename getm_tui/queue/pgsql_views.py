"""The SQL of a view (views.View) on the PostgreSQL queue: the same orders as SQLite's (sqlite_views.py),
each written as the expression of one index that migration 2 in pgsql.py makes, so a window of a
million-job queue reads what it shows; a page after a job is a row-value comparison on (key, id), which
PostgreSQL answers from that index."""

from __future__ import annotations

from typing import Any

from getm_tui.queue import pgsql as S
from getm_tui.queue.errors import QueueError
from getm_tui.queue.views import SORTS, View

# The key each order sorts by before the job id; every part ascending (descending keys are negated).
KEYS = {
    "added": None,
    "name": "j.shown",
    "state": "(CASE j.state WHEN 'active' THEN 0 WHEN 'queued' THEN 1 WHEN 'paused' THEN 2"
    " WHEN 'failed' THEN 3 WHEN 'done' THEN 4 WHEN 'canceled' THEN 5 ELSE 9 END)",
    "size": "(-coalesce(j.size, 0))",
    "progress": "(-(CASE WHEN j.state = 'done' THEN 1.0 WHEN j.size > 0"
    " THEN least(1.0, j.bytes_done::float8 / j.size) ELSE 0.0 END))",
    "priority": "(-j.priority)",
}
assert set(KEYS) == set(SORTS)


def _key(view: View) -> str | None:
    try:
        return KEYS[view.sort]
    except KeyError:
        raise QueueError(f"unknown sort order {view.sort!r} (expected one of {', '.join(SORTS)})") from None


def window_sql(
    view: View, after: tuple[Any, int] | None = None, anchor_of: int | None = None
) -> tuple[str, list[Any]]:
    """The statement of a window (its LIMIT and OFFSET are the last two arguments, the caller's), or with
    `anchor_of` the statement that reads that job's key; `after` is (key, id) of the job a page follows."""
    key = _key(view)
    if anchor_of is not None:
        return f"SELECT {key or 'j.id'} FROM getm_jobs j WHERE j.id = %s", [anchor_of]
    where: list[str] = []
    args: list[Any] = []
    if view.text:
        where.append("strpos(j.shown, %s) > 0")
        args.append(view.needle)
    if after is not None:
        if key is None:
            where.append("j.id > %s")
            args.append(after[1])
        else:
            where.append(f"({key}, j.id) > (%s, %s)")
            args.extend(after)
    order = "j.id" if key is None else f"{key}, j.id"
    filtered = f" WHERE {' AND '.join(where)}" if where else ""
    return f"{S.JOBS}{filtered} ORDER BY {order} LIMIT %s OFFSET %s", args


def count_sql(view: View) -> tuple[str, list[Any]]:
    """How many jobs the view's filter lets through."""
    if not view.text:
        return "SELECT count(*) FROM getm_jobs", []
    return "SELECT count(*) FROM getm_jobs WHERE strpos(shown, %s) > 0", [view.needle]
