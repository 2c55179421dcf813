"""What a download did: Result, returned by download(); and Transferred, what fetching its bytes did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from getm_tui.engine.checksum import Outcome, Verdict
from getm_tui.engine.plan import Part
from getm_tui.engine.sources.http import Probe


@dataclass
class Result:
    path: str
    size: int
    verdict: Verdict
    outcomes: list[Outcome]
    crc32c: str  # hex
    elapsed: float
    resumed: int  # bytes kept from an earlier attempt
    connections: int
    retries: int
    restarts: int  # times the remote file changed and the download started over
    probe: Probe | None = None
    archive: str = ""  # the archive check that passed ("gzip", "tar+xz", "zip"...), "" when none ran
    # With Options.commit "caller": the finished record to keep before the file at part_path(path) is
    # moved to `path` (target.commit); None when the file is already under its name.
    pending: dict[str, Any] | None = None


@dataclass
class Transferred:
    """What fetching a file's bytes came to, before they are verified and committed."""

    parts: list[Part]
    connections: int
    retries: int
