"""The resume record: what is already on disk, so a restart fetches only the rest.

Like aria2's control file: the part layout, how far each part got, and each part's crc32c (so crc32c
verification needs no re-read), tied to the remote file by size and validator. It is written after the
bytes it describes, so after any kill it never claims more than the file holds.

It also says which `NAME.getm-part` is ours: a first record (a claim, with no parts yet) is saved before
the partial file is created, so a download killed at any moment finds its own partial file again instead
of leaving it behind and starting over under another name.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from typing import Any, Protocol, TypeGuard
from urllib.parse import urlsplit

from getm_tui.engine.checksum import Expected, Outcome, Verdict
from getm_tui.engine.plan import Part

log = logging.getLogger(__name__)

VERSION = 1


class NameTaken(Exception):
    """A store refuses a claim: another download it knows of holds that name (see target.choose_target)."""


class ResumeStore(Protocol):
    """Where a download keeps its resume record (a file beside it, or the queue's database).

    `save` of a claim may raise NameTaken. A record that comes with `"reserved": true` is a name the
    store's owner set aside for this download before it ran (a claim of a file not created yet), having
    found nothing at the name or its partial name: the download takes that name without looking again
    (its O_EXCL create of the partial file, and the commit that never clobbers, meet what came since),
    and no partial file there is its own yet.
    """

    def load(self) -> dict[str, Any] | None: ...

    def save(self, record: dict[str, Any]) -> None: ...

    def clear(self) -> None: ...


class ControlFile:
    """The resume record as a small JSON file beside the partial download.

    Saved in place with one pwrite, padded with blanks to at least the previous length so no stale tail
    remains: a write to a regular file is not torn by killing the process, and replacing the file by a
    rename cost milliseconds per save on ext4 (it flushes the replaced file), dozens of times per GiB.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._length = 0

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
        data = json.dumps(record, separators=(",", ":")).encode()
        try:
            if self._fd < 0:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
                self._length = os.fstat(self._fd).st_size
            padded = data.ljust(self._length)
            os.pwrite(self._fd, padded, 0)
            self._length = len(padded)
        except OSError as e:
            # The record only saves work after a restart; a full disk must not fail the download. A
            # record torn by a failed write is unreadable and then ignored (start over), never wrong.
            log.warning("cannot save the resume record %s: %s", os.path.basename(self.path), e.strerror)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def clear(self) -> None:
        self.close()
        for path in (self.path, self.path + ".tmp"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


@functools.lru_cache(maxsize=256)
def url_key(url: str) -> str:
    """Identifies the remote file across re-signed URLs: scheme, host and path, never the query. Kept for
    the last URLs: a job's records ask for it several times."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return hashlib.sha256(f"{parts.scheme}://{host}:{parts.port}{parts.path}".encode()).hexdigest()[:32]


def record(
    url: str, size: int | None, validator: str | None, parts: list[Part], target: str | None = None
) -> dict[str, Any]:
    """The record of a download to `target` (its final path; the partial file is beside it)."""
    rec: dict[str, Any] = {
        "version": VERSION,
        "url": url_key(url),
        "size": size,
        "validator": validator,
        "parts": [[p.start, p.end, p.done, p.crc] for p in parts],
    }
    if target is not None:
        rec["name"] = os.path.basename(target)
    return rec


def claim(url: str, target: str) -> dict[str, Any]:
    """The record saved before `target`'s partial file is created: it is ours, nothing is in it yet."""
    return record(url, None, None, [], target)


def reservation(url: str, target: str) -> dict[str, Any]:
    """A claim of `target` that a store's owner saved for a download before it ran (see ResumeStore),
    having found nothing at `target` or its partial name: the download claims it without looking again."""
    return {**claim(url, target), "reserved": True}


def is_reserved(rec: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    return bool(rec and rec.get("reserved"))


def unreserved(rec: dict[str, Any]) -> dict[str, Any]:
    """The claim a reservation stands for, as the download saves it when it takes the name."""
    return {k: v for k, v in rec.items() if k != "reserved"}


def finished(
    rec: dict[str, Any], size: int, verdict: Verdict, crc32c: str, outcomes: list[Outcome], synced: bool
) -> dict[str, Any]:
    """The record saved once the file is complete and verified, just before it takes its final name.

    A download killed between that rename and its caller recording the end finds here that there is
    nothing left to do (see target.finished_before), instead of fetching the file again. `synced` says
    whether the file's bytes were on disk when this was saved (see Options.sync).
    """
    rows = [_outcome_row(o) for o in outcomes]
    done = {"size": size, "verdict": verdict, "crc32c": crc32c, "outcomes": rows, "synced": synced}
    return {**rec, "finished": done}


def _outcome_row(o: Outcome) -> list[Any]:
    e = o.expected
    return [e.algorithm, e.value, e.source, o.computed, o.ok, o.detail]


def outcome_from(row: list[Any]) -> Outcome:
    """An Outcome as `finished` recorded it."""
    algorithm, value, source, computed, ok, detail = row
    return Outcome(Expected(algorithm, value, source), computed, bool(ok), detail)


def rekeyed(rec: dict[str, Any] | None, url: str) -> dict[str, Any] | None:
    """The record as one of `url`: for a store that holds one download's record whatever its URL (a
    queue's job, whose URL can be replaced when a signed one expires). Whether the bytes still fit is
    then the remote's size and validator to say, as for any resume."""
    return {**rec, "url": url_key(url)} if rec and "url" in rec else rec


def _kept(rec: dict[str, Any]) -> int:
    try:
        return sum(int(p[2]) for p in rec.get("parts") or [])
    except (TypeError, ValueError, IndexError):
        return 0


def claimed_name(rec: dict[str, Any] | None, url: str) -> str | None:
    """The file name a record of this URL says its partial download went to (None if it does not say)."""
    if not rec or rec.get("version") != VERSION or rec.get("url") != url_key(url):
        return None
    name = rec.get("name")
    if not isinstance(name, str) or name in ("", ".", "..") or os.path.basename(name) != name:
        return None  # only ever a name in the download's own directory
    return name


def owns(rec: dict[str, Any] | None, url: str, target: str) -> bool:
    """Whether `target`'s partial file belongs to the download this record is of.

    Records written before they named their file tell only the URL: that has to do.
    """
    if not rec or rec.get("url") != url_key(url):
        return False
    name: object = rec.get("name", os.path.basename(target))
    return name == os.path.basename(target)


def restore(
    rec: dict[str, Any] | None, url: str, size: int | None, validator: str | None
) -> list[Part] | None:
    """The parts of a matching record, each marked with the bytes kept on disk; None if it does not match.

    A finished record is never resumed: target.finished_before has already refused it (its file is gone,
    or not the size or the bytes it recorded), and its parts tell only what was fetched, not what is on
    disk now: a power cut before the caller's sync leaves the size with zeros where the bytes were.
    """
    if not rec or rec.get("version") != VERSION or size is None or not rec.get("parts"):
        return None  # no record, another format, an unknown size, or a claim with nothing in it yet
    if "finished" in rec:
        return None
    if rec.get("url") != url_key(url):
        return None
    if rec.get("size") != size:
        log.warning(
            "remote file changed since the last attempt (another size): starting over, dropping the %d "
            "bytes fetched before",
            _kept(rec),
        )
        return None
    if validator != rec.get("validator"):
        log.warning(
            "remote file changed since the last attempt (another ETag or Last-Modified): starting over, "
            "dropping the %d bytes fetched before",
            _kept(rec),
        )
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
