"""A job taken over from a runner on another host: resume from its partial file only if this host sees it
and it holds the bytes the resume record says.

With a download directory shared at the same path (NFS or the like), the new runner finds the partial
file and fetches only what is not recorded. Without one it finds no file, or an old one of its own at
that path (it held the job once, another runner got further since): resuming from that would count
bytes the file does not hold. So before such a resume the runner reads the recorded bytes back and
compares each part's crc32c with the record's (reading a file costs less than fetching it); when the
file is missing or differs, the job starts over in the same file, and its history says why.

Which host wrote the record is in the record (`signed`, as a job host sends it to be saved); a record
written on this host is resumed as any other, with no reading back.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from getm_tui.engine import control
from getm_tui.engine.crc import crc32c
from getm_tui.engine.files import part_path

CHUNK = 1 << 20


def signed(record: dict[str, Any]) -> dict[str, Any]:
    """The record as it is saved: with the name of the host whose disk it describes."""
    return {**record, "host": socket.gethostname()}


def resumable(record: dict[str, Any] | None, url: str, directory: str) -> tuple[dict[str, Any] | None, str]:
    """The record to resume from, and why it cannot be resumed ("" when it can, or there is nothing to
    resume): a record of another host whose partial file is missing here or differs becomes a claim of
    the same file with nothing in it, so the download starts over there."""
    written_on = record.get("host") if record else None
    name = control.claimed_name(record, url)
    if record is None or not record.get("parts") or written_on is None or name is None:
        return record, ""  # nothing kept to resume from (most jobs): no need to ask the host's name
    host = socket.gethostname()
    if written_on == host:
        return record, ""
    path = part_path(os.path.join(directory, name))
    try:
        differs = _first_difference(path, record["parts"])
    except FileNotFoundError:
        why = f"the partial file {path} is not on this host ({host}; it was written on {written_on})"
    except (OSError, TypeError, ValueError) as e:
        why = f"the partial file {path} cannot be read here ({e})"
    else:
        if differs is None:
            return record, ""
        why = f"the partial file {path} does not hold the bytes its record says (from byte {differs})"
    return {**record, "parts": []}, f"starting over: {why}"


def _first_difference(path: str, parts: list[list[Any]]) -> int | None:
    """Where the first part whose bytes do not match its recorded crc32c starts; None if all match."""
    with open(path, "rb", buffering=0) as f:
        for start, _end, done, crc in parts:
            start, left, computed = int(start), int(done), 0
            f.seek(start)
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                computed = crc32c(chunk, computed)
                left -= len(chunk)
            if left > 0 or computed != int(crc):
                return start
    return None
