"""Networking users hit: literal IPv6 addresses in URLs (a fault server on ::1, through the probe, one
stream, parts over several connections, plain HTTP on http.client and requests' path), names with
addresses that fail (the address order and fallback, with a fake resolver and real sockets), and names
that do not resolve (`.invalid`, RFC 6761): one line at once, not minutes of retries."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from getm_tui.engine import DownloadError, HTTPSettings, Options, download
from getm_tui.engine.sources.addresses import create_connection, interleave
from tests.helpers.engine_util import read
from tests.helpers.faultserver import FaultServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("engine_hygiene")]

MiB = 1024 * 1024
DATA = random.Random(51).randbytes(3 * MiB + 5)
OPTS = Options(part_size=MiB, retries=6, retry_base=0.01)

V6, V4 = socket.AF_INET6, socket.AF_INET


def info(family: int, host: str, port: int) -> tuple:
    sockaddr = (host, port, 0, 0) if family == V6 else (host, port)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


@pytest.fixture
def six() -> Iterator[FaultServer]:
    try:
        server = FaultServer(host="::1").start()
    except OSError as e:  # a machine without IPv6 on its loopback
        pytest.skip(f"no IPv6 loopback: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "concurrency",
    [pytest.param(None, id="one-stream"), pytest.param(3, id="parallel", marks=pytest.mark.slow)],
)
def test_a_literal_ipv6_url_downloads(six: FaultServer, tmp_path, concurrency):
    url = six.add("/six.bin", DATA)
    assert url.startswith("http://[::1]:")
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert read(result.path) == DATA
    requests = six.resource(url).requests
    assert {r.request_headers["Host"] for r in requests} == {f"[::1]:{six.port}"}
    if concurrency:
        assert len(requests) > 2  # the probe, then ranges
    assert six.errors == []


@pytest.mark.parametrize(
    "concurrency",
    [pytest.param(None, id="one-stream"), pytest.param(3, id="parallel", marks=pytest.mark.slow)],
)
def test_a_literal_ipv6_https_url_downloads_through_requests(tmp_path, concurrency):
    """HTTPS goes through requests and urllib3 (the other path). The certificate's CA is nobody's and the
    workers come from a fork server started before any test could name a CA bundle: not verified."""
    import ssl

    import trustme

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert("::1").configure_cert(ctx)
    opts = replace(OPTS, http=HTTPSettings(verify_tls=False))
    try:
        server = FaultServer(tls=ctx, host="::1").start()
    except OSError as e:
        pytest.skip(f"no IPv6 loopback: {e}")
    try:
        url = server.add("/secure.bin", DATA)
        assert url.startswith("https://[::1]:")
        result = download(url, str(tmp_path), concurrency=concurrency, options=opts)
        assert read(result.path) == DATA
        assert server.errors == []
    finally:
        server.stop()


def test_addresses_alternate_families_in_the_resolvers_order():
    a6, b6, c6 = (info(V6, h, 80) for h in ("2001:db8::a", "2001:db8::b", "2001:db8::c"))
    a4, b4 = (info(V4, h, 80) for h in ("192.0.2.1", "192.0.2.2"))
    assert interleave([a6, b6, c6, a4, b4]) == [a6, a4, b6, b4, c6]
    assert interleave([a4, a6, b6]) == [a4, a6, b6]
    assert interleave([]) == []


def test_an_address_that_refuses_falls_back_to_the_next(fault_server: FaultServer):
    """A name resolving to a closed port on ::1 (refused) and then the fault server on 127.0.0.1."""
    closed = socket.socket(V6, socket.SOCK_STREAM)
    try:
        closed.bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"no IPv6 loopback: {e}")
    refused_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: a connect is refused at once
    asked = []

    def resolver(host, port, *rest):
        asked.append(host)
        return [info(V6, "::1", refused_port), info(V4, "127.0.0.1", fault_server.port)]

    sock = create_connection(("dual.example", fault_server.port), 5.0, resolver=resolver)
    try:
        assert sock.getpeername() == ("127.0.0.1", fault_server.port)
        assert sock.gettimeout() == 5.0
    finally:
        sock.close()
    assert asked == ["dual.example"]
    assert (
        create_connection(("[::1]", six_port := fault_server.port), 1.0, resolver=_literal(six_port))
        is not None
    )


def _literal(port: int):
    def resolver(host, p, *rest):
        assert host == "::1"  # the brackets of a URL's literal are gone
        return [info(V4, "127.0.0.1", port)]

    return resolver


def test_when_every_address_fails_the_last_error_is_raised():
    closed = socket.socket(V4, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ConnectionRefusedError):
        create_connection(("x.example", port), 1.0, resolver=lambda *a: [info(V4, "127.0.0.1", port)] * 2)


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("concurrency", [None, 2])
def test_a_name_that_does_not_resolve_fails_at_once_with_one_line(tmp_path, scheme, concurrency):
    url = f"{scheme}://no-such-host.invalid/data.bin?X-Amz-Signature=SECRET"
    with pytest.raises(DownloadError) as failed:
        download(url, str(tmp_path), concurrency=concurrency, options=Options(retries=50, retry_base=30))
    assert str(failed.value) == "cannot resolve host no-such-host.invalid"
