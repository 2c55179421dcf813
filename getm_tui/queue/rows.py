"""A job's stored row as the Job every backend hands out: the columns in the order both backends select
them, and the one function that reads such a row, so SQLite and PostgreSQL give byte-for-byte the same
jobs (JSON columns are text in both)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from getm_tui.queue.records import Job, JobSpec
from getm_tui.queue.states import JobState

# A resume record as both backends store it: no spaces. One encoder for every call (json.dumps with
# separators builds a new one each time, and the supervisor saves two records per job).
compact_json = json.JSONEncoder(separators=(",", ":")).encode


def loads_json(text: Any, default: Any) -> Any:
    """A JSON column; what a damaged store garbled reads as the default rather than failing the command."""
    if not text or not isinstance(text, str):
        return default
    try:
        value = json.loads(text)
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default


LISTED_COLUMNS = "id, url, name, path, state, priority, size, bytes_done, verdict, error"  # records.Listed
JOB_COLUMNS = (
    "id, url, directory, name, path, state, priority, concurrency, size, bytes_done, checksums, integrity, "
    "verdict, attempts, error, info, created, updated, started, finished"
)


# A stored state as its JobState, by a lookup that costs no more than the string; what a damaged file garbled
# stays the string it is (shown as it is, and moved by no transition).
STATE_OF: dict[str, JobState] = {s.value: s for s in JobState}


def job_from_row(row: Sequence[Any]) -> Job:
    (jid, url, directory, name, path, state, priority, conc, size, done, checks, integ, verdict, tries, err,
     info, created, updated, started, finished) = row  # fmt: skip
    # Empty lists skip json.loads: `ls` builds 100,000 of these in well under a second.
    return Job(
        jid, url, directory, name, path, STATE_OF.get(state, state), priority, conc, size, done,
        loads_json(checks, []) if checks and checks != "[]" else [],
        loads_json(integ, []) if integ and integ != "[]" else [], verdict, tries, err,
        loads_json(info, {}) if info and info != "{}" else {},
        created, updated, started, finished,
    )  # fmt: skip


def spec_values(s: JobSpec, now: float) -> tuple[Any, ...]:
    """What `add` stores of a job, in the order of the inserts: url, directory, name, priority,
    concurrency, checksums, info, created, updated."""
    return (
        s["url"],
        s["directory"],
        s.get("name"),
        int(s.get("priority") or 0),
        s.get("concurrency"),
        json.dumps(list(s.get("checksums") or [])),
        json.dumps(s["info"]) if s.get("info") else None,
        now,
        now,
    )
