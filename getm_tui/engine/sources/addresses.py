"""Connecting to a host that has several addresses: both families, tried in turn, none allowed to eat the
whole connect timeout.

A name that resolves to an IPv6 and an IPv4 address, one of them unreachable (a broken IPv6 route is the
usual case), must still work, and quickly: `socket.create_connection` tries the addresses in the
resolver's order and gives each the full timeout, so a blackholed first address costs ten seconds per
connection, and every part opens its own. Here the addresses are ordered as RFC 8305 (Happy Eyeballs)
section 4 orders them (the families alternating, the resolver's first family first) and each but the
last gets a short attempt: sequential fallback, the RFC's minimum, without racing sockets across threads.

Plain-HTTP connections (http_direct.py) connect through `create_connection` here; urllib3, which carries
TLS and proxied requests, already tries every address in turn.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

# How long an address may take to connect before the next one is tried, when there is a next one
# (RFC 8305 recommends starting the next attempt 250 ms after the last; without racing, a little longer
# gives a slow but working first address its chance).
PER_ADDRESS = 2.0

AddrInfo = tuple[Any, ...]  # (family, type, proto, canonname, sockaddr), as getaddrinfo gives them
Resolver = Callable[..., Sequence[AddrInfo]]


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
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
    *,
    resolver: Resolver = socket.getaddrinfo,
) -> socket.socket:
    """A connected TCP socket to `address` (host name or literal, port), trying each address in turn;
    the same signature as `socket.create_connection`, for http.client's `_create_connection`.

    Raises socket.gaierror when the name does not resolve, else the last address's OSError."""
    host, port = address
    if not isinstance(timeout, (int, float)):
        timeout = socket.getdefaulttimeout()  # http.client's "not given" stands for the default
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # a literal IPv6 address as a URL writes it
    infos = interleave(resolver(host, port, 0, socket.SOCK_STREAM))
    if not infos:
        raise OSError(f"no address for {host}")
    last: OSError | None = None
    for n, (family, kind, proto, _name, sockaddr) in enumerate(infos):
        final = n == len(infos) - 1
        sock = socket.socket(family, kind, proto)
        try:
            wait = timeout if final or timeout is None else min(timeout, PER_ADDRESS)
            sock.settimeout(wait)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(sockaddr)
            sock.settimeout(timeout)
            return sock
        except OSError as e:
            sock.close()
            last = e
    assert last is not None
    raise last
