"""The SQLite queue file's versions: each step brings a file from one `PRAGMA user_version` to the next.

Every open runs the steps a file has not had, in one transaction, so a queue written by an older getm-tui
keeps working (and a fresh file takes the same steps from version 0). A step never rewrites the jobs
table's rows: salvage.py reads them back from raw pages by their column count.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from getm_tui.queue.records import view_name_of

# Step 1: what lets the app show a window of a million-job queue without loading it. Every sort order
# (views.SORTS) has an index, ascending in every part (descending keys are negated) so that a page can
# start after a row's key; names, which are computed from a job's path, name or URL, live in a table of
# their own with their lowercased display name, kept by the queue's writes.
_WINDOWS = """
CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS names_sort ON names (name, id);
CREATE INDEX IF NOT EXISTS jobs_state_order ON jobs ((CASE state WHEN 'active' THEN 0 WHEN 'queued' THEN 1
    WHEN 'paused' THEN 2 WHEN 'failed' THEN 3 WHEN 'done' THEN 4 WHEN 'canceled' THEN 5 ELSE 9 END), id);
CREATE INDEX IF NOT EXISTS jobs_size_order ON jobs ((-coalesce(size, 0)), id);
CREATE INDEX IF NOT EXISTS jobs_progress_order ON jobs ((-(CASE WHEN state = 'done' THEN 1.0
    WHEN size > 0 THEN min(1.0, bytes_done * 1.0 / size) ELSE 0.0 END)), id);
CREATE INDEX IF NOT EXISTS jobs_priority_order ON jobs ((-priority), id);
"""


def _windows(db: sqlite3.Connection) -> None:
    for statement in _WINDOWS.split(";"):
        if statement.strip():
            db.execute(statement)
    rows = db.execute("SELECT id, url, name, path FROM jobs WHERE id NOT IN (SELECT id FROM names)")
    db.executemany(
        "INSERT INTO names (id, name) VALUES (?, ?)",
        ((i, view_name_of(url, name, path)) for i, url, name, path in rows),
    )


STEPS: tuple[Callable[[sqlite3.Connection], None], ...] = (_windows,)
VERSION = len(STEPS)


def migrate(db: sqlite3.Connection) -> None:
    """Bring the file to VERSION (the caller has created the base tables: schema.SCHEMA); a file from a
    newer getm-tui is left as it is. Runs in one transaction: a kill midway leaves the old version."""
    if db.execute("PRAGMA user_version").fetchone()[0] >= VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        have = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated it
        for step in STEPS[have:]:
            step(db)
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
