"""Plain-HTTP requests without a proxy go over http.client connections the session keeps
(engine/sources/http_direct.py): kept alive from request to request, never reused after a response not read
to its end or a server's close, and timed out as the settings say."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from http import client as http_client

import pytest

from getm_tui.engine import inline
from getm_tui.engine.errors import Retryable
from getm_tui.engine.sources import http, http_direct, http_session
from tests.helpers.faultserver import FaultServer
from tests.helpers.runner_util import wait_for

pytestmark = pytest.mark.timeout(60)

SETTINGS = http_session.HTTPSettings(connect_timeout=30.0, read_timeout=0.5)


def _get_all(session: http_session.Session, url: str) -> bytes:
    resp = http.get(session, url, SETTINGS)
    body = resp.raw.read()
    http.done_with(resp)
    return body


def _connections(server: FaultServer, path: str) -> list[int]:
    return [r.connection_id for r in server.resource(path).requests]


def test_requests_read_to_the_end_share_one_connection(fault_server: FaultServer, monkeypatch):
    monkeypatch.delenv("http_proxy", raising=False)
    url = fault_server.add("/a.bin", b"a" * 5000)
    session = http_session.make_session(SETTINGS)
    try:
        assert [_get_all(session, url) for _ in range(3)] == [b"a" * 5000] * 3
        # Cut short: that connection is dropped, and the next request opens another.
        resp = http.get(session, url, SETTINGS)
        assert resp.raw.read(10) == b"a" * 10
        http.done_with(resp)
        assert _get_all(session, url) == b"a" * 5000
    finally:
        session.close()
    ids = _connections(fault_server, "/a.bin")
    assert ids[0] == ids[1] == ids[2] == ids[3] and ids[4] != ids[3]


def test_a_kept_connection_reads_with_each_requests_own_timeout(fault_server: FaultServer):
    """The read timeout is set on a kept connection only when it changes (a syscall per request saved),
    so a request with another timeout must still get its own."""
    fault_server.add("/t.bin", b"t" * 100)
    direct = http_direct.Direct(keep=1)
    timeouts: list[float | None] = []
    try:
        for read_timeout in (0.5, 0.5, 7.0, 0.5):
            body = direct.get("127.0.0.1", fault_server.port, "/t.bin", {}, (30.0, read_timeout))
            assert body._conn is not None and body._conn.sock is not None
            timeouts.append(body._conn.sock.gettimeout())
            assert body.read() == b"t" * 100
            body.release_conn()
    finally:
        direct.close()
    assert timeouts == [0.5, 0.5, 7.0, 0.5]
    ids = _connections(fault_server, "/t.bin")
    assert len(ids) == 4 and len(set(ids)) == 1  # all four over the one kept connection


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    """A server that closes each connection after one keep-alive answer (an idle timeout): the next
    request goes out on a new connection, not as a failure to retry."""
    body = b"x" * 100
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: keep-alive\r\n\r\n" + body
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []
    closed = threading.Event()

    def serve() -> None:
        for _ in range(2):
            conn, _addr = listener.accept()
            accepted.append(1)
            with conn:
                conn.recv(65536)
                conn.sendall(answer)
            closed.set()  # closed, as its idle timeout would

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    session = http_session.make_session(SETTINGS)
    try:
        url = f"http://127.0.0.1:{port}/f"
        assert _get_all(session, url) == body
        assert closed.wait(5)
        assert _get_all(session, url) == body
    finally:
        session.close()
        listener.close()
    thread.join(5)
    assert len(accepted) == 2


@pytest.mark.slow
def test_a_stalled_response_times_out_after_read_timeout_not_connect_timeout(fault_server: FaultServer):
    url = fault_server.add("/s.bin", b"s" * 100_000, first_byte_delay=5.0)
    session = http_session.make_session(SETTINGS)
    started = time.monotonic()
    try:
        resp = http.get(session, url, SETTINGS)
        with pytest.raises((OSError, Retryable)):  # TimeoutError from the body's read
            resp.raw._fp.read()
        resp.close()
    finally:
        session.close()
    assert time.monotonic() - started < 4.0


def test_the_direct_route_is_kept_per_scheme_and_host_and_never_taken_for_https_or_a_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    session = http_session.make_session(SETTINGS)
    try:
        assert session._origin("http://example.com/a", True).direct == ("example.com", 80)
        assert session._origin("https://example.com/a", True).direct is None  # same host and netloc
        assert session._origin("http://example.com:8080/a", True).direct == ("example.com", 8080)
        proxied = {"http": "http://127.0.0.1:3128"}
        assert session._direct_route("http://elsewhere.example/a", proxied) is None
    finally:
        session.close()


PLAIN = [
    "http://127.0.0.1:8080/a.bin",
    "http://example.com/",
    "http://example.com/data/run-1/x_y~z.tar.gz",
    "http://host-1.example.org:65535/a/b?X-Amz-Signature=ab12&x=1/2:3@4",
    "http://example.com/a%20b%2Fc",  # escapes of characters that must stay escaped
    "http://example.com/a;b=c,d!e$f&g'h(i)j*k+l",
]
NOT_PLAIN = [
    "https://example.com/a",  # TLS
    "http://example.com",  # requests adds the path "/"
    "http://Example.com/a",  # urllib3 lower-cases the host
    "http://example.com/a/../b",  # dot segments are removed
    "http://example.com/./b",
    "http://example.com/a/..",
    "http://example.com/%41",  # an escaped unreserved character is decoded
    "http://example.com/a%2fb",  # lower-case hex is upper-cased
    "http://example.com/a%2",
    "http://example.com/a#frag",
    "http://example.com/a?",  # an empty query is dropped
    "http://[::1]:8080/a",
    "http://example.com:080/a",
    "http://example.com:99999/a",
    "http://user:pw@example.com/a",
    "http://example.com/a b",
    "http://exämple.com/a",
    "http://example.com/a|b",
    "http://.example.com/a",
]


def test_only_urls_requests_would_send_unchanged_take_the_plain_path():
    """The plain path skips requests' prepare_url, so it may take only URLs that prepare_url leaves as
    they are; each one is checked against requests itself, and the rest must go the long way."""
    import requests
    import urllib3

    for url in PLAIN:
        target = http_session._plain_target(url)
        assert target is not None, url
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        parsed = urllib3.util.parse_url(url)
        assert prepared.url == url, url
        assert target == (parsed.host, parsed.port or 80, prepared.path_url), url
    for url in NOT_PLAIN:
        assert http_session._plain_target(url) is None, url


def test_plain_http_without_a_proxy_or_netrc_never_loads_requests(fault_server: FaultServer, tmp_path):
    """requests and urllib3 cost 50-60 ms of imports at every start: a plain-HTTP download (probe, and
    parts fetched by forked workers) must not load them, and must still be whole."""
    body = bytes(range(256)) * (4 * inline.INLINE_LIMIT // 256)
    url = fault_server.add("/p.bin", body)
    script = (
        "import sys\n"
        "from getm_tui.engine import download\n"
        f"r = download({url!r}, {str(tmp_path / 'p.bin')!r}, concurrency=4)\n"
        "print(r.connections, 'requests' in sys.modules, 'urllib3' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != "NETRC"}
    env["HOME"] = str(tmp_path)  # no ~/.netrc
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["4", "False", "False"]
    assert (tmp_path / "p.bin").read_bytes() == body
    assert len(fault_server.resource("/p.bin").requests) >= 4


def test_a_request_sent_ahead_is_answered_to_the_same_request_only(fault_server: FaultServer, monkeypatch):
    """send_ahead puts a GET on the wire at once; the fetch that matches it (URL and header fields) reads its
    response without asking again, and one that differs sends its own."""
    monkeypatch.delenv("http_proxy", raising=False)
    data = os.urandom(10_000)
    url = fault_server.add("/ahead.bin", data)
    session = http_session.make_session(SETTINGS)
    try:
        assert session.send_ahead(url, {"Range": "bytes=0-99"}, SETTINGS) is True
        resource = fault_server.resource(url)
        wait_for(lambda: resource.requests, timeout=10)
        assert [r.range for r in resource.requests] == ["bytes=0-99"]  # sent before anyone asked
        assert len(session.sockets()) == 1
        other = http.get(session, url, SETTINGS, {"Range": "bytes=100-199"})
        assert other.raw.read() == data[100:200]
        http.done_with(other)
        ahead = http.get(session, url, SETTINGS, {"Range": "bytes=0-99"})
        assert ahead.raw.read() == data[:100]
        http.done_with(ahead)
        assert session.sockets() == []
        assert session.send_ahead("https://127.0.0.1:1/x", None, SETTINGS) is False  # TLS: not this way
    finally:
        session.close()
    assert sorted(r.range for r in resource.requests) == ["bytes=0-99", "bytes=100-199"]


HEADER_BLOCKS = [
    b'Server: nginx\r\nContent-Length: 10\r\nETag: "6754-10"\r\n\r\n',
    b"A:b\r\nA:  c  \r\nX-Empty:\r\nX-Tab:\t v\r\n\r\n",
    b"x-goog-hash: crc32c=AAAAAA==\r\nx-goog-hash: md5=BBBB==\r\nLatin: caf\xe9\r\n\r\n",
    b"Unix: line\nOther: 2\n\n",
    b"Colon: a: b: c\r\nCR: mid\rdle\r\n\r\n",
    # lines the email parser reads its own way: a folded value, no colon, a space in a name, no name
    b"Folded: one\r\n two\r\nNext: x\r\n\r\n",
    b"NoColonLine\r\nAfter: y\r\n\r\n",
    b"Name With Space: v\r\nOk: 1\r\n\r\n",
    b": novalue\r\nFrom nobody\r\n\r\n",
    b"Cut: off before its end",
    b"",
]


@pytest.mark.parametrize("block", HEADER_BLOCKS)
def test_header_fields_are_read_as_http_client_reads_them(block: bytes):
    ours = http_direct.parse_headers(io.BytesIO(block + b"BODY"))
    theirs = http_client.parse_headers(io.BytesIO(block + b"BODY"))
    assert type(ours) is type(theirs)
    assert ours.items() == theirs.items()
    names = [name for name, _ in theirs.items()]
    assert [ours.get_all(k) for k in names] == [theirs.get_all(k) for k in names]


def test_http_clients_limits_on_header_fields_hold():
    too_many = b"".join(b"F%d: v\r\n" % i for i in range(200)) + b"\r\n"
    with pytest.raises(http_client.HTTPException):
        http_direct.parse_headers(io.BytesIO(too_many))
    with pytest.raises(http_client.LineTooLong):
        http_direct.parse_headers(io.BytesIO(b"Long: " + b"x" * 70000 + b"\r\n\r\n"))


def test_a_response_over_a_kept_connection_has_its_fields_folded_or_not_and_its_body():
    """Two answers on one connection, the first with a folded field: each has the fields and the body
    http.client would give, and the connection is kept for the second."""
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Folded: a\r\n b\r\nX-Plain:  c\r\n\r\nabc"
    second = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Plain: d\r\n\r\n2\r\nde\r\n0\r\n\r\n"
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def serve() -> None:
        conn, _addr = listener.accept()
        accepted.append(1)
        with conn:
            for answer in (first, second):
                conn.recv(65536)
                conn.sendall(answer)
            conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    session = http_session.make_session(SETTINGS)
    try:
        url = f"http://127.0.0.1:{port}/f"
        resp = http.get(session, url, SETTINGS)
        assert resp.headers["x-folded"] == "a\r\n b" and resp.headers["X-Plain"] == "c"
        assert resp.raw.read() == b"abc"
        http.done_with(resp)
        resp = http.get(session, url, SETTINGS)
        assert resp.headers["x-plain"] == "d" and "Transfer-Encoding" in resp.headers
        assert resp.raw.read() == b"de"
        http.done_with(resp)
    finally:
        session.close()
        listener.close()
    thread.join(5)
    assert accepted == [1]
