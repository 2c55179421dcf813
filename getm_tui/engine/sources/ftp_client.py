"""FTP control connections as the engine opens them: ftplib, logged in, binary, passive, with TLS if asked.

Passive mode always, extended passive (EPSV, RFC 2428) first: it names only a port, so it works through
NAT and over IPv6; PASV is the fallback for servers that refuse EPSV (and its address is ignored for the
control connection's, as ftplib does). FTPS comes two ways: implicit (`ftps://`, TLS from the first byte,
port 990), and explicit (AUTH TLS on an ftp:// control connection) by the `ftp_tls` setting. By default
("auto") it is asked for before a user's password goes out and, refused, the login goes on in plain text,
as lftp does; an anonymous login has no secret to protect and stays plain, as curl's does, so a public
mirror whose certificate does not verify keeps working. "require" fails when TLS is refused (curl's
--ssl-reqd) and asks for it on anonymous logins too; "off" never asks. Data connections are protected
(PROT P) whenever the control connection is, and resume its TLS session, which servers such as vsftpd
require.

Each error of ftplib becomes the engine's: a 4xx reply or a dropped connection is Retryable, a 5xx reply
a DownloadError naming the server's line, a certificate that does not verify a DownloadError saying how
to skip the check.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import netrc
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from getm_tui.engine.errors import DownloadError, Retryable, UsageError
from getm_tui.engine.sources.http_session import HTTPSettings
from getm_tui.engine.sources.remote import Login, connection_errors

log = logging.getLogger(__name__)

FTP_TLS_MODES = ("auto", "require", "off")
ANONYMOUS = ("anonymous", "anonymous@")


class _Passive:
    """EPSV first, then PASV, for every data connection of a client."""

    _epsv_refused = False

    def makepasv(self) -> tuple[str, int]:
        client: Any = self
        if not self._epsv_refused:
            try:
                return ftplib.parse229(client.sendcmd("EPSV"), client.sock.getpeername())
            except ftplib.error_perm:
                self._epsv_refused = True
        _host, port = ftplib.parse227(client.sendcmd("PASV"))
        # The address in a PASV reply may be a private one behind NAT, or another host altogether.
        return client.sock.getpeername()[0], port


class _FTP(_Passive, ftplib.FTP):
    pass


class _FTPS(_Passive, ftplib.FTP_TLS):
    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            session = self.sock.session if isinstance(self.sock, ssl.SSLSocket) else None
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


class _ImplicitFTPS(_FTPS):
    """TLS from the first byte (ftps://): ftplib only speaks explicit AUTH TLS."""

    def connect(
        self, host: str = "", port: int = 0, timeout: float = -999, source_address: Any = None
    ) -> str:
        self.host, self.port = host, port
        if timeout != -999:
            self.timeout = timeout
        raw = socket.create_connection((host, port), self.timeout)
        self.sock = self.context.wrap_socket(raw, server_hostname=host)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


def with_netrc(login: Login) -> Login:
    """The login with ~/.netrc's (or $NETRC's) user and password for the host when the URL names no user.

    Looked up once, where the URL is probed: the login travels to the fetch workers with each task."""
    if login.user is not None:
        return login
    try:
        found = netrc.netrc(os.environ.get("NETRC") or None).authenticators(login.host)
    except (OSError, netrc.NetrcParseError):
        found = None
    if found is None or not found[0]:
        return login
    return replace(login, user=found[0], password=found[2] or "")


def tls_context(settings: HTTPSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(login: Login, implicit_tls: bool, tls: str, settings: HTTPSettings, shown: str) -> ftplib.FTP:
    """A logged-in control connection in binary mode; closed again when anything fails."""
    if tls not in FTP_TLS_MODES:
        raise UsageError(f"ftp_tls must be one of {', '.join(FTP_TLS_MODES)}, not {tls!r}")
    ftp: ftplib.FTP
    user, password = ANONYMOUS if login.user is None else (login.user, login.password or "")
    if implicit_tls:
        ftp = _ImplicitFTPS(context=tls_context(settings), timeout=settings.connect_timeout)
    elif tls == "off" or (tls == "auto" and (user, password) == ANONYMOUS):
        ftp = _FTP(timeout=settings.connect_timeout)
    else:
        ftp = _FTPS(context=tls_context(settings), timeout=settings.connect_timeout)
    try:
        with errors(shown):
            ftp.connect(login.host, login.port)
            assert ftp.sock is not None
            ftp.sock.settimeout(settings.read_timeout)
            ftp.timeout = settings.read_timeout  # what its data connections get
            if isinstance(ftp, _FTPS):
                if not implicit_tls:
                    _auth_tls(ftp, tls, shown)
                ftp.login(user, password, secure=False)  # TLS was asked for above, or is implicit
                if isinstance(ftp.sock, ssl.SSLSocket):
                    ftp.prot_p()
            else:
                ftp.login(user, password)
            ftp.voidcmd("TYPE I")  # SIZE and REST mean bytes in binary mode only
    except BaseException:
        ftp.close()
        raise
    return ftp


def _auth_tls(ftp: _FTPS, tls: str, shown: str) -> None:
    try:
        ftp.auth()
    except (ftplib.error_perm, ftplib.error_temp) as e:
        if tls == "require":
            raise DownloadError(f"the FTP server refuses TLS ({reply_of(e)}) at {shown}") from None
        log.info("%s does not offer TLS (%s): logging in without it", shown, reply_of(e))


def reply_of(e: BaseException) -> str:
    """A server's reply line, shortened; the server chose it, so it is never more than one line."""
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


@contextlib.contextmanager
def errors(shown: str) -> Iterator[None]:
    """ftplib's and ssl's errors as the engine's (then the socket's: remote.connection_errors), each naming
    the redacted URL `shown`."""
    with connection_errors(shown):
        try:
            yield
        except ftplib.error_temp as e:
            raise Retryable(f"FTP {reply_of(e)} from {shown}") from None
        except ftplib.error_perm as e:
            raise DownloadError(f"FTP {reply_of(e)} from {shown}") from None
        except (ftplib.error_reply, ftplib.error_proto) as e:
            raise Retryable(f"FTP {reply_of(e)} from {shown}") from None
        except ssl.SSLCertVerificationError as e:
            why = e.verify_message or e.reason or "certificate verify failed"
            raise DownloadError(
                f"TLS certificate verification failed for {shown}: {why} (--insecure skips verification)"
            ) from None


def size_of(ftp: ftplib.FTP, path: str) -> int | None:
    """SIZE (RFC 3659), or None when the server does not say (no SIZE, or a directory)."""
    try:
        reply = ftp.sendcmd(f"SIZE {path}")
    except ftplib.error_perm:
        return None
    value = reply[3:].strip()
    return int(value) if reply.startswith("213") and value.isdigit() else None


def modified_of(ftp: ftplib.FTP, path: str) -> str | None:
    """MDTM (RFC 3659) as the server writes it, YYYYMMDDHHMMSS[.sss] in UTC; None when it does not say."""
    try:
        reply = ftp.sendcmd(f"MDTM {path}")
    except ftplib.error_perm:
        return None
    value = reply[3:].strip()
    return value if reply.startswith("213") and value[:14].isdigit() else None
