"""The sftp:// source: stat's size and modification time as size and validator, reads at offsets for parts.

SFTP reads at any offset, so one file is fetched over several connections by each part opening the file
on an SSH connection of its own and reading from the part's first byte; paramiko pipelines the reads of
a part (prefetch) so a long round trip does not cost one per 32 KiB. Each part's connection stats the
file again before reading, and a file whose size or mtime changed since the probe (or since the parts a
resume record holds) starts over, as If-Range does for HTTP.

A path is absolute as curl and lftp read sftp:// URLs; `/~/` at its start means the login's home.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from getm_tui.engine.errors import DownloadError
from getm_tui.engine.sources import remote, sftp_client
from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.http import Probe
from getm_tui.engine.sources.http_session import HTTPSettings, Reply, Session
from getm_tui.engine.sources.listing import RemoteEntry
from getm_tui.engine.sources.remote import (
    Entry,
    RemoteFile,
    RemoteSource,
    StreamBody,
    login_of,
    stream_reply,
)
from getm_tui.engine.sources.sftp_client import SSHServer
from getm_tui.engine.urls import redact

if TYPE_CHECKING:
    import paramiko

# Bytes asked for at once on a part's connection (reads of 32 KiB, all in flight together): enough to fill
# a long fat pipe, and what waits in memory at most.
PREFETCH_WINDOW = 64 * 32 * 1024


def server_of(url: str, access: Access) -> SSHServer:
    login = login_of(url, 22)
    return SSHServer(
        login,
        os.path.expanduser(access.sftp_key_file) if access.sftp_key_file else "",
        login.password if login.password is not None else (access.sftp_password or None),
        os.path.expanduser(access.sftp_known_hosts),
        access.sftp_host_keys,
    )


def path_of(url: str) -> str:
    """The server path of an sftp:// URL: absolute, or relative to the home directory after `/~/`."""
    path = unquote(urlsplit(url).path) or "/"
    if path == "/~" or path.startswith("/~/"):
        return path[3:] or "."
    return path


def _validator(attrs: paramiko.SFTPAttributes) -> str | None:
    return None if attrs.st_mtime is None else str(int(attrs.st_mtime))


@dataclass(frozen=True, repr=False)
class SFTPTransport(RemoteFile):
    """Opens ranges of one probed file, each over an SSH connection of its own (see base.Transport)."""

    server: SSHServer

    def open(self, first: int, end: int | None, settings: HTTPSettings) -> Reply:
        shown = redact(self.url)
        client, sftp = sftp_client.connect(self.server, settings, shown)
        try:
            with sftp_client.errors(shown):
                attrs = sftp.stat(self.path)
                self.check(attrs.st_size, _validator(attrs))
                body = _body(client, sftp, self.path, first, end if end is not None else attrs.st_size)
        except BaseException:
            sftp_client.close(client, sftp)
            raise
        return stream_reply(self.url, body, ranged=bool(first))


def _body(
    client: paramiko.SSHClient, sftp: paramiko.SFTPClient, path: str, first: int, end: int | None
) -> StreamBody:
    """Bytes [first, end) of the file, read a window at a time with the window's reads all in flight at
    once; closing drops the SSH connection.

    paramiko sends a prefetch's requests from a thread of its own: a window's are sent at once (the thread
    ends as soon as they are out), and the thread is joined before the connection closes, so a body closed
    early never leaves it writing to a closed channel. A window bounds what waits in memory."""
    f = sftp.open(path, "rb")
    f.seek(first)
    position = window_end = first
    senders: list[threading.Thread] = []

    def read(buffer: memoryview) -> int:
        nonlocal position, window_end
        if end is not None and position >= window_end < end:
            window_end = min(end, position + PREFETCH_WINDOW)
            before = set(threading.enumerate())
            f.prefetch(window_end)
            senders.extend(set(threading.enumerate()) - before)
        data = f.read(min(len(buffer), window_end - position) if end is not None else len(buffer))
        buffer[: len(data)] = data
        position += len(data)
        return len(data)

    def finish() -> None:
        for sender in senders:
            sender.join(timeout=5)
        try:
            f.close()
        finally:
            sftp_client.close(client, sftp)

    return StreamBody(read, None if end is None else end - first, finish)


class SFTPSource(RemoteSource):
    """sftp:// URLs as a Source; the HTTP session is not used."""

    def probe(
        self, session: Session, url: str, settings: HTTPSettings, access: Access
    ) -> tuple[Probe, Reply]:
        server = server_of(url, access)
        path = path_of(url)
        shown = redact(url)
        client, sftp = sftp_client.connect(server, settings, shown)
        try:
            with sftp_client.errors(shown):
                attrs = sftp.stat(path)
                if attrs.st_mode is not None and stat.S_ISDIR(attrs.st_mode):
                    raise DownloadError(f"{shown} names a directory: `getm-tui mirror` fetches a tree")
                body = _body(client, sftp, path, 0, attrs.st_size)
        except BaseException:
            sftp_client.close(client, sftp)
            raise
        transport = SFTPTransport(url, path, attrs.st_size, _validator(attrs), server)
        return transport.probe(attrs.st_size is not None), stream_reply(url, body, ranged=False)

    def listing(self, url: str, settings: HTTPSettings, access: Access) -> Iterator[RemoteEntry]:
        return _walk(server_of(url, access), url, path_of(url), settings)


def _walk(server: SSHServer, url: str, root: str, settings: HTTPSettings) -> Iterator[RemoteEntry]:
    """Every regular file under the directory `root`, over one connection (see remote.walk); symbolic links
    are not followed."""
    shown = redact(url)
    root = root.rstrip("/") or "/"
    client, sftp = sftp_client.connect(server, settings, shown)

    def entries_of(relative: str) -> list[Entry]:
        with sftp_client.errors(shown):
            found = sftp.listdir_attr(f"{root}/{relative}" if relative else root)
        return [(_kind(a.st_mode or 0), a.filename, a.st_size, _seconds(a.st_mtime)) for a in found]

    try:
        yield from remote.walk(url, entries_of)
    finally:
        sftp_client.close(client, sftp)


def _kind(mode: int) -> str:
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def _seconds(mtime: int | None) -> float | None:
    return None if mtime is None else float(mtime)


SOURCE = SFTPSource()
