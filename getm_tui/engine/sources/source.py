"""What every source of bytes is asked for, whatever its scheme: the Source interface.

Three things, per scheme: *probe* a URL (size, validator, the checksums known before the first byte, a file
name), *open a byte range* of it, and *list* a prefix or a tree (the schemes that have them). http(s) is
the first two; s3:// and gs:// add listing and ride the HTTP transport for the bytes, signing each request
(base.Signer). A scheme with a transport of its own (FTP, SFTP) implements the same three over its own
connections; its fetch tasks then say which transport opens their ranges.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.http import Probe
from getm_tui.engine.sources.http_session import HTTPSettings, Reply, Session
from getm_tui.engine.sources.listing import RemoteEntry


class Source(Protocol):
    """One URL scheme: probe an object, open a byte range of it, list what lies under a prefix."""

    def probe(
        self, session: Session, url: str, settings: HTTPSettings, access: Access
    ) -> tuple[Probe, Reply]:
        """The facts about `url` and an open response whose body starts at byte 0."""
        ...

    def open_range(
        self, session: Session, probe: Probe, first: int, end: int | None, settings: HTTPSettings
    ) -> Reply:
        """A response whose body is bytes [first, end) of the probed object (to its end when None)."""
        ...

    def listing(self, url: str, settings: HTTPSettings, access: Access) -> Iterator[RemoteEntry]:
        """Every object under the prefix `url` names, page by page as the remote hands them out."""
        ...
