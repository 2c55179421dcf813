"""How the SQLite queue takes a stream of new jobs: rows built a block at a time, what the specs share
encoded once, and each job's shown name beside it (migrations.py's names table), so an `add -i` of a
million URLs is a few big inserts in one transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from getm_tui.queue.records import JobSpec, view_name_of

INSERT_JOB = (
    "INSERT INTO jobs (url, directory, name, priority, concurrency, checksums, info, created, updated)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_NAME = "INSERT OR REPLACE INTO names (id, name) VALUES (?, ?)"
ADD_BLOCK = 10_000  # specs read, inserted and named at a time
CACHE_KIB = -2000  # SQLite's default page cache (negative: KiB)
ADD_CACHE_KIB = -65536


def insert_rows(block: Sequence[JobSpec], now: float) -> tuple[list[tuple[Any, ...]], list[str]]:
    """The jobs rows of a block of specs, and the names they are sorted and filtered by. Specs of one add
    mostly share their settings: what they share is encoded once."""
    rows: list[tuple[Any, ...]] = []
    names: list[str] = []
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
        rows.append(
            (
                url,
                s["directory"],
                name,
                int(s.get("priority") or 0),
                s.get("concurrency"),
                json.dumps(list(checks)) if checks else "[]",
                once(s.get("info")),
                now,
                now,
            )
        )
        # A spec without a URL is refused by the insert (NOT NULL), with the queue's error.
        names.append(view_name_of(url, name, None))
    return rows, names
