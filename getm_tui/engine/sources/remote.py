"""What the schemes with connections of their own (FTP, SFTP) share: where a URL logs in, and a body.

The engine reads every body the same way, through a Reply (`raw.readinto`, `close`): `StreamBody` makes
bytes from an FTP data connection or an SFTP file handle one, bounded to the range asked for, so inline
reads, fetch workers and urlopen's Reader take them as they take an HTTP body. `walk` lists a tree from
what each scheme says about one directory. The parties' user names and
passwords come from the URL, unquoted; they are shown nowhere (`Login`'s repr hides the password, and
every message names the URL through `redact`).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from getm_tui.engine.errors import DownloadError, RemoteChanged, Retryable, UsageError
from getm_tui.engine.files import sanitize_name
from getm_tui.engine.sources.http import Probe
from getm_tui.engine.sources.http_session import HTTPSettings, Reply, Session
from getm_tui.engine.sources.listing import RemoteEntry
from getm_tui.engine.urls import name_from_url, redact


@dataclass(frozen=True)
class Login:
    """Where and as whom to log in: host, port, and the URL's user and password (None when absent)."""

    host: str
    port: int
    user: str | None
    password: str | None = field(default=None, repr=False)


def login_of(url: str, default_port: int) -> Login:
    """The host, port and credentials a ftp://, ftps:// or sftp:// URL names."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise UsageError(f"malformed URL (no host): {redact(url)!r}")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return Login(parts.hostname, parts.port or default_port, user, password)


@dataclass(frozen=True)
class RemoteFile:
    """One probed file of a server, as a transport reopens it: its URL, its path there, and the size and
    modification time the probe found, which every part's connection checks again (what If-Range does)."""

    url: str
    path: str
    size: int | None
    modified: str | None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(self.url)!r})"

    def open(self, first: int, end: int | None, settings: HTTPSettings) -> Reply:
        """Bytes [first, end) of the file over a connection of the scheme's (see base.Transport)."""
        raise NotImplementedError

    def probe(self, ranges: bool) -> Probe:
        """What the probe found, with this file as the transport of its ranges."""
        return Probe(
            url=self.url,
            status=200,
            size=self.size,
            ranges=ranges and self.size is not None,
            etag=None,
            last_modified=self.modified,
            filename=sanitize_name(name_from_url(self.url)),
            expected=[],
            transport=self,
        )

    def check(self, size: int | None, modified: str | None) -> None:
        """RemoteChanged unless the file still has the probe's size and modification time."""
        if (size, modified) != (self.size, self.modified):
            raise RemoteChanged("the remote file changed (another size or modification time)")


@contextlib.contextmanager
def connection_errors(shown: str) -> Iterator[None]:
    """The socket's errors as the engine's, naming the redacted URL `shown`: a name that does not resolve
    fails at once, the rest (refused, reset, timed out) is Retryable. Each scheme catches its own first."""
    try:
        yield
    except socket.gaierror as e:
        if e.errno == socket.EAI_AGAIN:
            raise Retryable(f"cannot resolve host now ({shown})") from None
        raise DownloadError(f"cannot resolve host of {shown}") from None
    except TimeoutError:
        raise Retryable(f"timed out ({shown})") from None
    except EOFError:
        raise Retryable(f"connection closed ({shown})") from None
    except OSError as e:
        raise Retryable(f"{e.strerror or str(e) or type(e).__name__} ({shown})") from None


class RemoteSource:
    """What the FTP and SFTP sources share: the HTTP session is not used, and a range is opened by the
    probe's transport."""

    def open_range(
        self, session: Session, probe: Probe, first: int, end: int | None, settings: HTTPSettings
    ) -> Reply:
        assert probe.transport is not None
        return probe.transport.open(first, end, settings)


class StreamBody:
    """The raw body of a Reply read from a connection that is not HTTP, bounded to `length` bytes.

    `read` is one read of at most the buffer's length (0 at the end of the stream); `finish` is called
    once, when the body is closed, read to its end or not, and drops or hands back the connection.
    """

    status = 200
    reason = "OK"

    def __init__(
        self, read: Callable[[memoryview], int], length: int | None, finish: Callable[[], None]
    ) -> None:
        self.headers: dict[str, str] = {}
        self._read = read
        self._left = length
        self._finish: Callable[[], None] | None = finish

    def readinto(self, buffer: memoryview) -> int:
        if self._left is not None:
            if self._left <= 0:
                return 0
            buffer = buffer[: self._left]
        if self._finish is None:
            return 0
        n = self._read(buffer)
        if self._left is not None:
            self._left -= n
        return n

    def close(self) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish()

    def release_conn(self) -> None:
        """Nothing to hand back to a pool: `close` has dealt with the connection."""


def stream_reply(url: str, body: StreamBody, ranged: bool) -> Reply:
    """A Reply over `body` (status 206 for a range from a byte other than 0, as HTTP would answer)."""
    body.status = 206 if ranged else 200
    return Reply(body, url)


MAX_DEPTH = 64  # directories deeper than this are not entered: a loop the server does not show as a link
# What a scheme says of one directory entry: its kind ("file", "dir", anything else is skipped), its name
# as the server sends it, its size and its modification time (seconds since the epoch).
Entry = tuple[str, str, int | None, float | None]


def walk(url: str, entries_of: Callable[[str], Iterable[Entry]]) -> Iterator[RemoteEntry]:
    """Every file under the directory `url` names, with paths relative to it, depth first in name order
    (a directory's files and subdirectories as they sort, so the paths come out sorted).

    `entries_of(relative)` lists the directory at `relative` ("" for the root). A directory named `.`,
    `..` or with a `/` in it is not entered; file names are passed on as the server sends them: the
    caller's `listing.local_path` refuses the ones that would land outside the target directory."""
    base = url if url.endswith("/") else url + "/"

    def listed(relative: str) -> Iterator[Entry]:
        return iter(sorted(entries_of(relative), key=lambda e: e[1]))

    stack: list[tuple[str, Iterator[Entry]]] = [("", listed(""))]
    while stack:
        relative, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        kind, name, size, modified = entry
        path = f"{relative}/{name}" if relative else name
        if kind == "dir":
            if name not in (".", "..") and "/" not in name and len(stack) <= MAX_DEPTH:
                stack.append((path, listed(path)))
        elif kind == "file":
            yield RemoteEntry(path=path, url=base + quote(path), size=size, modified=modified)
