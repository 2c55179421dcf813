"""Connecting to a host that has several addresses: Happy Eyeballs (RFC 8305), the attempts raced.

A name that resolves to an IPv6 and an IPv4 address, one of them unreachable (a broken IPv6 route is the
usual case), must still work, and quickly: `socket.create_connection` tries the addresses in the
resolver's order and gives each the full timeout, so a blackholed first address costs the whole connect
timeout per connection, and every part opens its own. Here the addresses are ordered as RFC 8305 section 4
orders them (the families alternating, the resolver's first family first) and raced as its section 5 says:
an attempt starts every STAGGER seconds (at once when the one before fails) while the earlier ones go on;
the first to connect wins and the others are closed. Each attempt keeps the whole connect timeout, so a
slow but working address is not cut off. Non-blocking sockets and one poll, in the calling thread: no
thread per attempt.

Every HTTP path connects through `create_connection` here: plain-HTTP connections (http_direct.py), and
urllib3's, which carry TLS and proxied requests (http_session.py gives its pools connections that call it).
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

# RFC 8305's Connection Attempt Delay: how long an attempt has alone before the next address is tried.
STAGGER = 0.25

AddrInfo = tuple[Any, ...]  # (family, type, proto, canonname, sockaddr), as getaddrinfo gives them
Resolver = Callable[..., Sequence[AddrInfo]]
SocketOption = tuple[int, int, Any]  # (level, option, value) for setsockopt, as urllib3 passes them


def interleave(infos: Sequence[AddrInfo]) -> list[AddrInfo]:
    """The addresses with the families alternating, starting with the resolver's first family, each
    family keeping the resolver's order (RFC 8305, section 4)."""
    if not infos:
        return []
    first = infos[0][0]
    same = [i for i in infos if i[0] == first]
    other = [i for i in infos if i[0] != first]
    out: list[AddrInfo] = []
    for n in range(max(len(same), len(other))):
        out += same[n : n + 1] + other[n : n + 1]
    return out


def create_connection(
    address: tuple[str, int],
    timeout: Any = None,
    source_address: tuple[str, int] | None = None,
    *,
    socket_options: Sequence[SocketOption] | None = None,
    resolver: Resolver | None = None,
) -> socket.socket:
    """A connected TCP socket to `address` (host name or literal, port), the addresses raced; the
    signature of `socket.create_connection` (for http.client's `_create_connection`), with urllib3's
    `socket_options`. `timeout` bounds each attempt; anything but a number means the default timeout.

    Raises socket.gaierror when the name does not resolve, else the last attempt's OSError (TimeoutError
    when it timed out)."""
    host, port = address
    if not isinstance(timeout, (int, float)):
        timeout = socket.getdefaulttimeout()  # http.client's and urllib3's "not given"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # a literal IPv6 address as a URL writes it
    infos = interleave((resolver or socket.getaddrinfo)(host, port, 0, socket.SOCK_STREAM))
    if not infos:
        raise OSError(f"no address for {host}")
    sock = _Race(timeout, source_address, socket_options or ()).run(infos)
    sock.settimeout(timeout)
    return sock


class _Race:
    """The attempts of one create_connection: started in turn, watched together, the losers closed."""

    def __init__(
        self, timeout: float | None, source_address: tuple[str, int] | None, options: Sequence[SocketOption]
    ) -> None:
        self.timeout = math.inf if timeout is None else timeout
        self.source_address = source_address
        self.options = options
        self.pending: dict[int, tuple[socket.socket, float]] = {}  # fd -> (socket, its deadline)
        self.poller = select.poll()
        self.error: OSError | None = None

    def run(self, infos: list[AddrInfo]) -> socket.socket:
        waiting = list(infos)
        next_start = 0.0
        try:
            while waiting or self.pending:
                now = time.monotonic()
                if waiting and (not self.pending or now >= next_start):
                    racing = len(self.pending)
                    won = self._start(waiting.pop(0), now)
                    if won is not None:
                        return won
                    # The next address waits STAGGER for this one; at once if this one failed already.
                    next_start = now + STAGGER if len(self.pending) > racing else 0.0
                    continue
                wake = min(d for _, d in self.pending.values())
                if waiting:
                    wake = min(wake, next_start)
                ms = None if math.isinf(wake) else max(0, math.ceil((wake - now) * 1000))
                for fd, _event in self.poller.poll(ms):
                    won = self._finished(fd)
                    if won is not None:
                        return won
                    next_start = 0.0  # a failed attempt lets the next one start at once
                self._expire(time.monotonic())
        finally:
            for sock, _ in self.pending.values():
                sock.close()
        assert self.error is not None
        raise self.error

    def _start(self, info: AddrInfo, now: float) -> socket.socket | None:
        """Begin connecting to one address; the socket if it connected at once."""
        family, kind, proto, _name, sockaddr = info
        sock = socket.socket(family, kind, proto)
        try:
            for level, option, value in self.options:
                sock.setsockopt(level, option, value)
            if self.source_address is not None:
                sock.bind(self.source_address)
            sock.setblocking(False)
            code = sock.connect_ex(sockaddr)
        except OSError as e:
            sock.close()
            self.error = e
            return None
        if code == 0:
            return sock
        if code not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            sock.close()
            self.error = OSError(code, os.strerror(code))
            return None
        self.pending[sock.fileno()] = (sock, now + self.timeout)
        self.poller.register(sock.fileno(), select.POLLOUT)
        return None

    def _finished(self, fd: int) -> socket.socket | None:
        """An attempt is writable: connected (the winner), or failed (its error kept)."""
        sock, _ = self._drop(fd)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            return sock
        sock.close()
        self.error = OSError(code, os.strerror(code))
        return None

    def _expire(self, now: float) -> None:
        for fd, (sock, deadline) in list(self.pending.items()):
            if now >= deadline:
                self._drop(fd)
                sock.close()
                self.error = TimeoutError("timed out")

    def _drop(self, fd: int) -> tuple[socket.socket, float]:
        self.poller.unregister(fd)
        return self.pending.pop(fd)
