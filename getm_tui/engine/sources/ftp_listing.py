"""Listing an FTP directory tree: MLSD (RFC 3659) where the server has it, `LIST` in the Unix format else.

MLSD says each entry's type, size and modification time in a form made for programs. Servers without it
(old ones, some appliances) answer LIST with `ls -l` lines, parsed here for the common Unix format; a line
of another shape is skipped with a note in the log rather than guessed at. Symbolic links are not followed
(a link to a parent directory would list forever).
"""

from __future__ import annotations

import calendar
import ftplib
import logging
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from getm_tui.engine.sources import ftp_client, remote
from getm_tui.engine.sources.http_session import HTTPSettings
from getm_tui.engine.sources.listing import RemoteEntry
from getm_tui.engine.sources.remote import Entry
from getm_tui.engine.urls import redact

if TYPE_CHECKING:
    from getm_tui.engine.sources.ftp import Server

log = logging.getLogger(__name__)

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
# `-rw-r--r--   1 owner  group   1234 Jan  5 12:00 name`, `... 1234 Jan  5  2023 name`; the group column is
# missing on some servers.
_UNIX_LINE = re.compile(
    r"^(?P<type>[-dlbcps])[-rwxsStTl]{9}\S*\s+\d+\s+\S+\s+(?:\S+\s+)?(?P<size>\d+)\s+"
    r"(?P<month>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+(?P<when>\d{1,2}:\d{2}|\d{4})\s(?P<name>.+)$"
)


def mdtm_seconds(value: str | None) -> float | None:
    """Seconds since the epoch of an MDTM or MLSD `modify` value (YYYYMMDDHHMMSS[.sss], UTC)."""
    if not value or len(value) < 14 or not value[:14].isdigit():
        return None
    try:
        stamp = time.strptime(value[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    fraction = value[15:] if value[14:15] == "." and value[15:].isdigit() else ""
    return calendar.timegm(stamp) + (float(f"0.{fraction}") if fraction else 0.0)


def parse_unix_line(line: str, now: float) -> tuple[str, str, int, float | None] | None:
    """(type: file, dir or link; name; size; modified) of one `LIST` line, or None for another shape.

    A date with a time and no year is within the last year: this year's, or last year's when it would
    otherwise lie more than a day ahead (as ls prints dates older than six months with a year)."""
    m = _UNIX_LINE.match(line)
    if m is None or m["month"].lower() not in _MONTHS:
        return None
    kind = {"-": "file", "d": "dir", "l": "link"}.get(m["type"], "other")
    name = m["name"]
    if kind == "link":
        name = name.split(" -> ", 1)[0]
    month, day = _MONTHS[m["month"].lower()], int(m["day"])
    try:
        if ":" in m["when"]:
            hour, minute = (int(x) for x in m["when"].split(":"))
            year = time.gmtime(now).tm_year
            modified = float(calendar.timegm((year, month, day, hour, minute, 0)))
            if modified > now + 86400:
                modified = float(calendar.timegm((year - 1, month, day, hour, minute, 0)))
        else:
            modified = float(calendar.timegm((int(m["when"]), month, day, 0, 0, 0)))
    except ValueError:
        modified = None
    return kind, name, int(m["size"]), modified


def _entries(
    ftp: ftplib.FTP, directory: str, shown: str
) -> Iterator[tuple[str, str, int | None, float | None]]:
    """(type, name, size, modified) of each entry of one directory: MLSD, else LIST."""
    try:
        found = list(ftp.mlsd(directory or "", facts=["type", "size", "modify"]))
    except ftplib.error_perm as e:
        if not ftp_client.reply_of(e).startswith(("500", "502", "504")):
            raise
        found = None
    if found is not None:
        for name, facts in found:
            kind = facts.get("type", "").lower()
            if kind in ("cdir", "pdir"):
                continue
            size = facts.get("size", "")
            yield kind, name, int(size) if size.isdigit() else None, mdtm_seconds(facts.get("modify"))
        return
    lines: list[str] = []
    ftp.retrlines(f"LIST {directory}" if directory else "LIST", lines.append)
    now = time.time()
    for line in lines:
        if not line.strip() or line.startswith("total "):
            continue
        parsed = parse_unix_line(line, now)
        if parsed is None:
            log.info("%s: skipping a LIST line of an unknown format", shown)
            continue
        yield parsed


def walk(server: Server, url: str, root: str, settings: HTTPSettings) -> Iterator[RemoteEntry]:
    """Every file under the directory `root` names, over one control connection (see remote.walk)."""
    shown = redact(url)
    absolute = root.startswith("/")
    root = root.strip("/")
    ftp = server.connect(settings, shown)

    def entries_of(relative: str) -> list[Entry]:
        directory = "/".join(p for p in (root, relative) if p)
        with ftp_client.errors(shown):
            return list(_entries(ftp, "/" + directory if absolute else directory, shown))

    try:
        yield from remote.walk(url, entries_of)
    finally:
        ftp.close()
