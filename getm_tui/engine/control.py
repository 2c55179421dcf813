"""The resume record: what is already on disk, so a restart fetches only the rest.

Like aria2's control file: the part layout, how far each part got, and each part's crc32c (so crc32c
verification needs no re-read), tied to the remote file by size and validator. It is written after the
bytes it describes, so after any kill it never claims more than the file holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Protocol
from urllib.parse import urlsplit

from getm_tui.engine.plan import Part

log = logging.getLogger(__name__)

VERSION = 1


class ResumeStore(Protocol):
    """Where a download keeps its resume record (a file beside it, or the queue's database)."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, record: dict[str, Any]) -> None: ...

    def clear(self) -> None: ...


class ControlFile:
    """The resume record as a small JSON file beside the partial download."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                record = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable resume record %s: %s", self.path, e)
            return None
        return record if isinstance(record, dict) else None

    def save(self, record: dict[str, Any]) -> None:
        tmp = self.path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f, separators=(",", ":"))
            os.replace(tmp, self.path)
        except OSError as e:
            # The record only saves work after a restart; a full disk must not fail the download (the
            # older record, if any, stays: it claims less than the file holds, which is safe).
            log.warning("cannot save the resume record %s: %s", os.path.basename(self.path), e.strerror)
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def clear(self) -> None:
        for path in (self.path, self.path + ".tmp"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def url_key(url: str) -> str:
    """Identifies the remote file across re-signed URLs: scheme, host and path, never the query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return hashlib.sha256(f"{parts.scheme}://{host}:{parts.port}{parts.path}".encode()).hexdigest()[:32]


def record(url: str, size: int | None, validator: str | None, parts: list[Part]) -> dict[str, Any]:
    return {
        "version": VERSION,
        "url": url_key(url),
        "size": size,
        "validator": validator,
        "parts": [[p.start, p.end, p.done, p.crc] for p in parts],
    }


def restore(
    rec: dict[str, Any] | None, url: str, size: int | None, validator: str | None
) -> list[Part] | None:
    """The parts of a matching record, each marked with the bytes kept on disk; None if it does not match."""
    if not rec or rec.get("version") != VERSION or size is None:
        return None
    if rec.get("url") != url_key(url) or rec.get("size") != size:
        return None
    if validator != rec.get("validator"):
        log.info("remote file changed since the last attempt: starting over")
        return None
    try:
        parts = []
        for i, (start, end, done, crc) in enumerate(rec["parts"]):
            p = Part(i, int(start), None if end is None else int(end))
            p.done = p.kept = int(done)
            p.crc = int(crc)
            parts.append(p)
    except (KeyError, TypeError, ValueError):
        return None
    return parts
