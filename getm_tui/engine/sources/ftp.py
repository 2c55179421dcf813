"""The ftp:// and ftps:// source: SIZE and MDTM as size and validator, REST for ranges, RETR for bytes.

What If-Range is to HTTP, SIZE and MDTM are here: the probe records them, every part's own control
connection asks them again before its RETR, and a file that changed since (or since the parts a resume
record holds) starts over. One file is fetched over several connections by REST to each part's first byte,
a control connection per part, and the part's data connection closed at its end (FTP has no end offset).
A server that refuses REST gets one connection from byte 0, and the job's history says that an
interruption will start it over.

The path of an ftp:// URL is relative to the login directory, as RFC 1738 and curl read it (`%2F` at its
start makes it absolute); for an anonymous login of a public server, the two are the same.
"""

from __future__ import annotations

import ftplib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from getm_tui.engine.errors import DownloadError
from getm_tui.engine.sources import ftp_client
from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.http import Probe
from getm_tui.engine.sources.http_session import HTTPSettings, Reply, Session
from getm_tui.engine.sources.listing import RemoteEntry
from getm_tui.engine.sources.remote import Login, RemoteFile, RemoteSource, StreamBody, login_of, stream_reply
from getm_tui.engine.urls import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Server:
    """One FTP server as a client reaches it: the login, implicit TLS (ftps://) and the ftp_tls mode."""

    login: Login
    implicit_tls: bool
    tls: str

    def connect(self, settings: HTTPSettings, shown: str) -> ftplib.FTP:
        return ftp_client.connect(self.login, self.implicit_tls, self.tls, settings, shown)


def server_of(url: str, access: Access) -> Server:
    implicit = urlsplit(url).scheme.lower() == "ftps"
    return Server(ftp_client.with_netrc(login_of(url, 990 if implicit else 21)), implicit, access.ftp_tls)


def path_of(url: str) -> str:
    """The server path of an ftp:// URL: relative to the login directory unless it starts with %2F."""
    path = unquote(urlsplit(url).path)
    return path[1:] if path.startswith("/") else path


@dataclass(frozen=True, repr=False)
class FTPTransport(RemoteFile):
    """Opens ranges of one probed file, each over a control connection of its own (see base.Transport)."""

    server: Server

    def open(self, first: int, end: int | None, settings: HTTPSettings) -> Reply:
        shown = redact(self.url)
        ftp = self.server.connect(settings, shown)
        try:
            with ftp_client.errors(shown):
                size = ftp_client.size_of(ftp, self.path)
                modified = ftp_client.modified_of(ftp, self.path)
                self.check(size, modified)
                conn = ftp.transfercmd(f"RETR {self.path}", rest=first or None)
        except BaseException:
            ftp.close()
            raise
        stop = end if end is not None else size
        length = None if stop is None else stop - first
        return stream_reply(self.url, _body(ftp, conn, length), ranged=bool(first))


def _body(ftp: ftplib.FTP, conn: socket.socket, length: int | None) -> StreamBody:
    """A body over a data connection; closing it drops the data and the control connection both (a RETR
    cut short at a part's end leaves the control connection mid-reply)."""

    def finish() -> None:
        try:
            conn.close()
        finally:
            ftp.close()

    return StreamBody(conn.recv_into, length, finish)


class FTPSource(RemoteSource):
    """ftp:// and ftps:// URLs as a Source; the HTTP session is not used."""

    def probe(
        self, session: Session, url: str, settings: HTTPSettings, access: Access
    ) -> tuple[Probe, Reply]:
        server = server_of(url, access)
        path = path_of(url)
        shown = redact(url)
        if not path or path.endswith("/"):
            raise DownloadError(f"{shown} names a directory: `getm-tui mirror` fetches a tree")
        ftp = server.connect(settings, shown)
        try:
            with ftp_client.errors(shown):
                size = ftp_client.size_of(ftp, path)
                modified = ftp_client.modified_of(ftp, path)
                ranges = _rest_works(ftp, shown)
                conn = ftp.transfercmd(f"RETR {path}", rest=0 if ranges else None)
        except BaseException:
            ftp.close()
            raise
        probe = FTPTransport(url, path, size, modified, server).probe(ranges)
        return probe, stream_reply(url, _body(ftp, conn, size), ranged=False)

    def listing(self, url: str, settings: HTTPSettings, access: Access) -> Iterator[RemoteEntry]:
        from getm_tui.engine.sources import ftp_listing

        return ftp_listing.walk(server_of(url, access), url, path_of(url), settings)


def _rest_works(ftp: ftplib.FTP, shown: str) -> bool:
    """Whether the server takes REST (asked with REST 0, which restarts nothing); said in the job's
    history when it does not, since an interruption then starts the file over."""
    try:
        ftp.sendcmd("REST 0")
        return True
    except ftplib.error_perm as e:
        log.warning(
            "%s: the FTP server refuses REST (%s): one connection from byte 0, and an interrupted "
            "download starts over",
            shown,
            ftp_client.reply_of(e),
        )
        return False


SOURCE = FTPSource()
