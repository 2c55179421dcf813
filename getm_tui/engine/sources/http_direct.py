"""Plain-HTTP GETs on http.client connections kept per origin, for requests that need no proxy and no TLS.

urllib3's `urlopen` (retry object, timeouts, pool bookkeeping, its own response wrapper) costs CPU per
request over the http.client exchange it wraps, and a queue of small files makes one request per file on
cores shared with the server. HTTPS and
proxied requests stay on urllib3 (TLS settings, proxy tunnels), where the handshake dominates anyway.

What urllib3 did that is kept here: a connection is reused only if its previous response was read to the
end and the server did not ask to close it, and it is checked for a server's close (readable while idle)
before reuse; TCP_NODELAY; a connect timeout, then a read timeout for the rest; a host's addresses
raced (addresses.py).

A response's header fields are read without the email package's general parser where every line is a
plain `Name: value` (see parse_headers): in a queue of small files that parser was one of the larger costs
of each file.
"""

from __future__ import annotations

import email.parser
import http.client
import re
import select
import socket
import threading
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from getm_tui.engine.sources import addresses


class Headers(Mapping[str, str]):
    """A response's header fields, looked up in any case, a repeated field's values joined with ", " (as
    urllib3's HTTPHeaderDict does): the plain path does not import urllib3 at all (see http_session.py)."""

    def __init__(self, fields: Iterable[tuple[str, str]]) -> None:
        self._fields: dict[str, tuple[str, str]] = {}
        for name, value in fields:
            key = name.lower()
            seen = self._fields.get(key)
            self._fields[key] = (name, value) if seen is None else (seen[0], f"{seen[1]}, {value}")

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)


# A header line as servers send it: a field name (visible characters but the colon), a colon, the value on
# the same line. Anything else (a folded continuation, a line with no name) goes to the email parser.
_FIELD = re.compile(r"([!-9;-~]+):[ \t]*([^\r\n]*)\r?\n")


def parse_headers(fp: IO[bytes], _class: type[http.client.HTTPMessage] = http.client.HTTPMessage) -> Any:
    """http.client.parse_headers, giving the same message for the same lines: each plain `Name: value`
    line is stored as the email package's compat32 parser stores it (the value without the spaces after
    the colon or the line's end), and a response with any other line is parsed by that parser whole.
    http.client's own reader takes the lines, so its limits (line length, number of fields) hold; its
    last line is always the blank one (or the end of the stream) that ended them."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]
    msg = _class()
    for line in lines[:-1]:
        field = _FIELD.fullmatch(line.decode("iso-8859-1"))
        if field is None:
            return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
        msg.set_raw(field[1], field[2])
    return msg


class _Response(http.client.HTTPResponse):
    """http.client's response with its own begin(), bound to http.client's names but for parse_headers
    (above), so that the status line, the chunked and length rules and the keep-alive decision stay the
    standard library's, whichever Python runs."""

    begin = types.FunctionType(
        http.client.HTTPResponse.begin.__code__,
        {**vars(http.client), "parse_headers": parse_headers},
        "begin",
    )

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(_ReadAhead(sock), *args, **kwargs)  # type: ignore[arg-type]


# What one read of a response's socket may take. http.client's 8 KiB took a small file in two reads, each
# after a poll (a socket with a timeout polls first): in a job host's threads every such call costs a
# turn of the GIL. Below glibc's mmap threshold (128 KiB), so the buffer comes from the heap.
READ_AHEAD = 96 * 1024


class _ReadAhead:
    """The socket as http.client's response sees it: `makefile` alone, with a bigger buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def makefile(self, mode: str) -> IO[bytes]:
        return self._sock.makefile(mode, buffering=READ_AHEAD)  # type: ignore[call-overload,no-any-return]


class Body:
    """The raw body of a response, as the engine reads it (`_fp` is the http.client response, as with
    urllib3), and what becomes of its connection."""

    def __init__(self, resp: http.client.HTTPResponse, conn: http.client.HTTPConnection, pool: Direct):
        self._fp = resp
        self._conn: http.client.HTTPConnection | None = conn
        self._pool = pool
        self.status = resp.status
        self.reason = resp.reason
        self.headers = Headers(resp.msg.items())

    def read(self, amt: int | None = None) -> bytes:
        return self._fp.read(amt)

    def readinto(self, buffer: Any) -> int:
        return self._fp.readinto(buffer)

    def close(self) -> None:
        """Drop the response and its connection (the body may be unread)."""
        self._fp.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def release_conn(self) -> None:
        """Keep the connection for the next request if this response was read to its end and the server
        keeps it open; else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._fp.isclosed() and not self._fp.will_close:
            self._pool.give(conn)
        else:
            conn.close()


_Request = tuple[str, int, str, tuple[tuple[str, str], ...]]


def _request(host: str, port: int, path: str, headers: dict[str, str]) -> _Request:
    """What must be the same for a response sent ahead to answer a request (header order included)."""
    return (host, port, path, tuple(headers.items()))


class Direct:
    """Idle connections per (host, port), at most `keep` each, and requests sent ahead of their reader."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._idle: dict[tuple[str, int], list[http.client.HTTPConnection]] = {}
        self._ahead: dict[_Request, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()

    def get(
        self,
        host: str,
        port: int,
        path: str,
        headers: dict[str, str],
        timeout: tuple[float, float],
        method: str = "GET",
    ) -> Body:
        """Send one GET (or HEAD) and read the status line and headers. Raises OSError (timeouts
        included) and http.client's HTTPException (a closed or garbled response)."""
        with self._lock:
            ahead = self._ahead and method == "GET"
            conn = self._ahead.pop(_request(host, port, path, headers), None) if ahead else None
        if conn is not None:
            return self._response(conn)  # sent by send_ahead
        conn = self._take(host, port) or self._connect(host, port, timeout)
        return self._response(self._send(conn, path, headers, timeout, method))

    def send_ahead(
        self, host: str, port: int, path: str, headers: dict[str, str], timeout: tuple[float, float]
    ) -> None:
        """Send a GET now whose response the same request to `get` reads later.

        A download's coordinator sends its first parts' requests before it forks the workers that read
        them, each inheriting its connection: the server's time to first byte overlaps the workers' start
        instead of following it (forks and their first page faults take a while on a small machine).
        """
        conn = self._send(self._connect(host, port, timeout), path, headers, timeout)
        key = _request(host, port, path, headers)
        with self._lock:
            old = self._ahead.pop(key, None)
            self._ahead[key] = conn
        if old is not None:
            old.close()

    def sockets(self) -> list[int]:
        """The descriptors of the requests sent ahead (a forked worker keeps them)."""
        with self._lock:
            return [c.sock.fileno() for c in self._ahead.values() if c.sock is not None]

    @staticmethod
    def _connect(host: str, port: int, timeout: tuple[float, float]) -> http.client.HTTPConnection:
        # A literal IPv6 address comes bracketed from the URL: http.client takes it bare (and brackets it
        # again in the Host field).
        conn = http.client.HTTPConnection(host.strip("[]"), port, timeout=timeout[0])
        conn._create_connection = addresses.create_connection  # type: ignore[attr-defined]
        conn.response_class = _Response
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _send(
        conn: http.client.HTTPConnection,
        path: str,
        headers: dict[str, str],
        timeout: tuple[float, float],
        method: str = "GET",
    ) -> http.client.HTTPConnection:
        try:
            assert conn.sock is not None
            if conn.sock.gettimeout() != timeout[1]:  # a kept connection has it already: no syscall
                conn.sock.settimeout(timeout[1])
            conn.request(method, path, headers=headers)
        except BaseException:
            conn.close()
            raise
        return conn

    def _response(self, conn: http.client.HTTPConnection) -> Body:
        try:
            resp = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        return Body(resp, conn, self)

    def _take(self, host: str, port: int) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get((host, port))
            while idle:
                conn = idle.pop()
                sock = conn.sock
                # Readable while idle: the server closed it (or sent what nobody asked for).
                if sock is not None and not select.select([sock], [], [], 0)[0]:
                    return conn
                conn.close()
        return None

    def give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault((conn.host, conn.port), [])
            if len(idle) < self._keep:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle] + list(self._ahead.values())
            self._idle.clear()
            self._ahead.clear()
        for conn in conns:
            conn.close()
