"""Happy Eyeballs (RFC 8305): a host's addresses raced, on every HTTP path.

A blackhole is a real loopback listener whose accept queue is full, so the kernel drops every further SYN
and a connect to it neither succeeds nor fails until its timeout. A name resolves to that first and to a
working server second (a fake resolver, or socket.getaddrinfo replaced in this process: /etc/hosts cannot
be edited). Nothing here measures time: the connect timeout is far beyond the test's own timeout, so a
connector that waited for the blackhole would fail the test by hanging; what is asserted is where the
connection went and that the attempt on the blackhole was made, then closed.
"""

from __future__ import annotations

import random
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace

import pytest

from getm_tui.engine import HTTPSettings, Options, download
from getm_tui.engine.sources import addresses
from tests.helpers.engine_util import read
from tests.helpers.faultserver import FaultServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("engine_hygiene")]

V6, V4 = socket.AF_INET6, socket.AF_INET
FOREVER = 600.0  # a connect timeout no test may wait out
DATA = random.Random(8305).randbytes(300_000)
OPTS = Options(retries=0, http=HTTPSettings(connect_timeout=FOREVER, verify_tls=False))


def info(family: int, host: str, port: int) -> tuple:
    sockaddr = (host, port, 0, 0) if family == V6 else (host, port)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


def syn_sent_to(port: int) -> int:
    """Sockets of this machine still trying to connect (SYN_SENT) to `port` on the loopback."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "02" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


@pytest.fixture
def blackhole() -> Iterator[tuple[int, str, int]]:
    """(family, host, port) of a listener that takes no more connections: on ::1 where the loopback has
    IPv6 (the usual broken-IPv6 case), else on 127.0.0.1."""
    try:
        family, host = V6, "::1"
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind((host, 0))
    except OSError:
        family, host = V4, "127.0.0.1"
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind((host, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):  # the accept queue takes one or two; the rest hang in SYN_SENT
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        fillers.append(s)
    try:
        yield family, host, port
    finally:
        for s in fillers:
            s.close()
        listener.close()


class _Recording(socket.socket):
    """socket.socket, noting where each connect went and which sockets were closed."""

    attempts: list[tuple[object, socket.socket]] = []
    closed: list[socket.socket] = []

    def connect_ex(self, address: object) -> int:
        _Recording.attempts.append((address, self))
        return super().connect_ex(address)  # type: ignore[arg-type]

    def close(self) -> None:
        _Recording.closed.append(self)
        super().close()


def test_the_blackholed_first_address_is_raced_and_abandoned(
    fault_server: FaultServer, blackhole: tuple[int, str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    family, host, port = blackhole
    stuck = syn_sent_to(port)
    monkeypatch.setattr(_Recording, "attempts", [])
    monkeypatch.setattr(_Recording, "closed", [])
    monkeypatch.setattr(addresses.socket, "socket", _Recording)

    def resolver(name: str, *_rest: object) -> list[tuple]:
        assert name == "dual.test"
        return [info(family, host, port), info(V4, "127.0.0.1", fault_server.port)]

    sock = addresses.create_connection(("dual.test", fault_server.port), FOREVER, resolver=resolver)
    attempts, closed = _Recording.attempts, _Recording.closed
    monkeypatch.undo()
    try:
        assert sock.getpeername()[:2] == ("127.0.0.1", fault_server.port)
        assert sock.gettimeout() == FOREVER  # the winner is handed back blocking, with the timeout
        [(first, tried), (second, won)] = attempts
        assert first[:2] == (host, port) and second == ("127.0.0.1", fault_server.port)  # type: ignore[index]
        assert won is sock and tried in closed and sock not in closed
        assert syn_sent_to(port) == stuck  # nothing of ours is still knocking at the blackhole
    finally:
        sock.close()


def _tls_server() -> FaultServer:
    import trustme

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert("dual.test").configure_cert(ctx)
    return FaultServer(tls=ctx).start()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_download_races_past_a_blackholed_address_on_every_path(
    scheme: str,
    fault_server: FaultServer,
    blackhole: tuple[int, str, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: object,
) -> None:
    """http goes over http.client (http_direct.py), https over requests and urllib3 (http_pools.py)."""
    family, host, port = blackhole
    server = fault_server if scheme == "http" else _tls_server()
    try:
        server.add("/raced.bin", DATA)
        real = socket.getaddrinfo

        def getaddrinfo(name: str, *rest: object) -> list[tuple]:
            if name == "dual.test":
                return [info(family, host, port), info(V4, "127.0.0.1", server.port)]
            return real(name, *rest)  # type: ignore[arg-type]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        stuck = syn_sent_to(port)
        url = f"{scheme}://dual.test:{server.port}/raced.bin"
        result = download(url, str(tmp_path), concurrency=None, options=replace(OPTS, part_size=1 << 20))
        assert read(result.path) == DATA
        assert [r.status for r in server.resource("/raced.bin").requests] == [206]  # one GET, all of it
        assert syn_sent_to(port) == stuck
    finally:
        if server is not fault_server:
            server.stop()
