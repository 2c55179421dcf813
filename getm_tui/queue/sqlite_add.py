"""How the SQLite queue takes a stream of new jobs: rows built a block at a time, what the specs share
encoded once, and each job's shown name beside it (migrations.py's names table), so an `add -i` of a
million URLs is a few big inserts in one transaction.

Each job row also costs an entry in each index of the jobs and names tables (the runnable order, the
views' sort orders, the names'): kept up row by row, they were more than half of such an add. Building an
index from its table at once costs about a third of that per row. So an add that has come to outgrow the
queue it is added to drops those indexes for the rest of it and builds them again before it commits: the
same transaction, so a reader never sees the queue without them, and a failed add rolls both back.

Rows go in many to a statement (`INSERT ... VALUES (...), (...), ...`): each execution of a statement
has a cost of its own (binding, stepping, resetting, and the AUTOINCREMENT counter written back at its
end), which a statement per row pays once per job. Jobs that differ only by their URL (the most of a
long list) bind the rest of their row once for the statement: binding a value costs about as much as
inserting it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from getm_tui.queue.records import JobSpec, view_name_of

INSERT_JOB = (
    "INSERT INTO jobs (url, directory, name, priority, concurrency, checksums, info, created, updated)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_NAME = "INSERT OR REPLACE INTO names (id, name) VALUES (?, ?)"
RENAME = (
    "INSERT INTO names (id, name) VALUES (?, ?)"
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name WHERE name IS NOT excluded.name"
)
ROWS_PER_INSERT = 100  # rows of one INSERT statement (SQLite allows 32,766 values a statement)
ADD_BLOCK = 10_000  # specs read, inserted and named at a time
CACHE_KIB = -2000  # SQLite's default page cache (negative: KiB)
ADD_CACHE_KIB = -65536
# An add defers the indexes once it has added this many jobs and at least as many as the queue held:
# rebuilding costs in proportion to the whole table, the upkeep it saves in proportion to what is added.
DEFER_INDEXES_AFTER = 50_000
REBUILD_CACHE_KIB = -16384


class BulkInsert:
    """One of the inserts above, run with ROWS_PER_INSERT rows a statement: `run` takes the rows' values
    flattened into one list, in the order of the columns."""

    def __init__(self, single: str) -> None:
        head, _, marks = single.partition(" VALUES ")
        self.single = single
        self.width = marks.count("?")
        self.many = f"{head} VALUES " + ", ".join([marks] * ROWS_PER_INSERT)

    def run(self, db: sqlite3.Connection, flat: Sequence[Any]) -> None:
        width, step = self.width, self.width * ROWS_PER_INSERT
        whole = len(flat) - len(flat) % step
        for start in range(0, whole, step):
            db.execute(self.many, flat[start : start + step])
        if whole < len(flat):
            db.executemany(self.single, (flat[i : i + width] for i in range(whole, len(flat), width)))


class JobInsert:
    """INSERT_JOB, ROWS_PER_INSERT rows a statement: `run` takes the rows' URLs and the rest of each row
    (what follows the URL in INSERT_JOB), and binds that rest once when the statement's rows share it."""

    def __init__(self) -> None:
        self.rows = BulkInsert(INSERT_JOB)
        head = INSERT_JOB.partition(" VALUES ")[0]
        rest = ", ".join(f"?{ROWS_PER_INSERT + i}" for i in range(1, self.rows.width))
        self.shared = f"{head} VALUES " + ", ".join(f"(?{i}, {rest})" for i in range(1, ROWS_PER_INSERT + 1))

    def run(self, db: sqlite3.Connection, urls: Sequence[Any], rests: Sequence[tuple[Any, ...]]) -> None:
        whole = len(urls) - len(urls) % ROWS_PER_INSERT
        for start in range(0, whole, ROWS_PER_INSERT):
            stop = start + ROWS_PER_INSERT
            some = rests[start:stop]
            if some.count(some[0]) == ROWS_PER_INSERT:
                db.execute(self.shared, (*urls[start:stop], *some[0]))
            else:
                db.execute(self.rows.many, [v for row in _joined(urls[start:stop], some) for v in row])
        if whole < len(urls):
            db.executemany(self.rows.single, _joined(urls[whole:], rests[whole:]))


def _joined(urls: Sequence[Any], rests: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(url, *rest) for url, rest in zip(urls, rests, strict=True)]


class DeferredIndexes:
    """The jobs and names tables' indexes, dropped while a big add inserts and built again at its end."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.existing = int(db.execute("SELECT count(*) FROM jobs").fetchone()[0])
        self._dropped: list[tuple[str, str]] = []

    def consider(self, added: int) -> None:
        """Drop the indexes if the add has come to outgrow the queue (once)."""
        if self._dropped or added < max(self.existing, DEFER_INDEXES_AFTER):
            return
        self._dropped = self.db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('jobs', 'names')"
        ).fetchall()
        for name, _sql in self._dropped:
            self.db.execute(f'DROP INDEX "{name}"')

    def rebuild(self) -> None:
        if not self._dropped:
            return
        # Each build sorts in memory up to the page cache's size, and in a temporary file past it: the
        # add's big cache would hold a sort's worth on top of its pages.
        self.db.execute(f"PRAGMA cache_size = {REBUILD_CACHE_KIB}")
        for _name, sql in self._dropped:
            self.db.execute(sql)
        self._dropped = []


def insert_rows(block: Sequence[JobSpec], now: float) -> tuple[list[Any], list[tuple[Any, ...]], list[str]]:
    """The jobs rows of a block of specs, as their URLs and the rest of each row (JobInsert), and the names
    they are sorted and filtered by. Specs of one add mostly share their settings: what they share is
    encoded once, and a row's rest that equals the one before is that one."""
    urls: list[Any] = []
    rests: list[tuple[Any, ...]] = []
    names: list[str] = []
    last: tuple[Any, ...] = ()
    encoded: dict[int, tuple[Any, str]] = {}  # by identity: the object is kept, so its id stays its own

    def once(value: Any) -> str | None:
        if not value:
            return None
        seen = encoded.get(id(value))
        if seen is None:
            seen = encoded[id(value)] = (value, json.dumps(value))
        return seen[1]

    for s in block:
        url, name, checks = s["url"], s.get("name"), s.get("checksums")
        rest = (
            s["directory"],
            name,
            int(s.get("priority") or 0),
            s.get("concurrency"),
            json.dumps(list(checks)) if checks else "[]",
            once(s.get("info")),
            now,
            now,
        )
        if rest == last:
            rest = last
        urls.append(url)  # a spec without a URL is refused by the insert (NOT NULL), with the queue's error
        rests.append(rest)
        last = rest
        names.append(view_name_of(url, name, None))
    return urls, rests, names
