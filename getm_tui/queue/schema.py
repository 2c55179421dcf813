"""The SQLite queue's file name and tables, shared by the queue and the salvage that rebuilds a damaged
file (which must write the same tables without opening the damaged one through the queue)."""

from __future__ import annotations

import os

DB_NAME = "queue.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    directory TEXT NOT NULL,
    name TEXT,
    path TEXT,
    state TEXT NOT NULL DEFAULT 'queued',
    priority INTEGER NOT NULL DEFAULT 0,
    concurrency INTEGER,
    size INTEGER,
    bytes_done INTEGER NOT NULL DEFAULT 0,
    checksums TEXT NOT NULL DEFAULT '[]',
    integrity TEXT,
    verdict TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    resume TEXT,
    info TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_runnable ON jobs (state, priority DESC, id);
CREATE TABLE IF NOT EXISTS events (
    job_id INTEGER NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, at);
"""


def inode_of(path: str) -> int | None:
    """Which file a path names now: a recovery replaces the queue file, so its inode changes."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
