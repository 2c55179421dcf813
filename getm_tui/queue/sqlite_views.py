"""The SQL of a view (views.View) on the SQLite queue: each order is the expression of one index made by
migrations.py (written the same way, or SQLite would not use the index), so a window of a million-job
queue costs what the window holds, and a page can start after a row's key (keyset) instead of counting
its way there."""

from __future__ import annotations

from typing import Any

from getm_tui.queue.errors import QueueError
from getm_tui.queue.views import SORTS, View

# The key each order sorts by before the job id; every part ascending.
_KEYS = {
    "added": None,
    "name": "names.name",
    "state": "(CASE jobs.state WHEN 'active' THEN 0 WHEN 'queued' THEN 1 WHEN 'paused' THEN 2"
    " WHEN 'failed' THEN 3 WHEN 'done' THEN 4 WHEN 'canceled' THEN 5 ELSE 9 END)",
    "size": "(-coalesce(jobs.size, 0))",
    "progress": "(-(CASE WHEN jobs.state = 'done' THEN 1.0 WHEN jobs.size > 0"
    " THEN min(1.0, jobs.bytes_done * 1.0 / jobs.size) ELSE 0.0 END))",
    "priority": "(-jobs.priority)",
}
assert set(_KEYS) == set(SORTS)


def _key(view: View) -> str | None:
    try:
        return _KEYS[view.sort]
    except KeyError:
        raise QueueError(f"unknown sort order {view.sort!r} (expected one of {', '.join(SORTS)})") from None


def _source(view: View, key: str | None) -> str:
    """The rows a view reads: names only when it sorts or filters by them."""
    if view.text or view.sort == "name":
        return "jobs JOIN names ON names.id = jobs.id"
    return "jobs"


class WindowSQL:
    """The statements of one view's windows. A keyset page is two reads: the rows that tie with the
    anchor's key and come after it by id, then the rows of greater keys; each is one range of an index
    (a single row-value comparison over an expression would scan the index from its start)."""

    def __init__(self, view: View, columns: str) -> None:
        key = _key(view)
        tie = "names.id" if view.sort == "name" else "jobs.id"
        source = _source(view, key)
        cols = ", ".join(f"jobs.{c.strip()}" for c in columns.split(","))
        where = ["instr(names.name, ?) > 0"] if view.text else []
        self.args: list[Any] = [view.needle] if view.text else []

        def select(*conditions: str, order: str) -> str:
            clauses = [*where, *conditions]
            return (
                f"SELECT {cols} FROM {source}"
                + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
                + f" ORDER BY {order} LIMIT ? OFFSET ?"
            )

        self.key = key
        self.first = select(order=tie if key is None else f"{key}, {tie}")
        self.anchor = f"SELECT {key or tie} FROM {source} WHERE jobs.id = ?"
        if key is None:
            self.ties = select(f"{tie} > ?", order=tie)
            self.after = ""
        else:
            self.ties = select(f"{key} = ?", f"{tie} > ?", order=tie)
            self.after = select(f"{key} > ?", order=f"{key}, {tie}")


def count_sql(view: View) -> tuple[str, list[Any]]:
    """How many jobs the view's filter lets through."""
    if not view.text:
        return "SELECT count(*) FROM jobs", []
    return "SELECT count(*) FROM names WHERE instr(name, ?) > 0", [view.needle]
