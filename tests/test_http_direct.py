# The fixture is imported by name and then used as a parameter name, which is what pytest wants.
# ruff: noqa: F811
"""Plain-HTTP requests without a proxy go over http.client connections the session keeps (engine/direct.py):
kept alive from request to request, never reused after a response not read to its end or a server's
close, and timed out as the settings say."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from getm_tui.engine import http
from getm_tui.engine.errors import Retryable
from tests.faultserver import FaultServer, fault_server  # noqa: F401

pytestmark = pytest.mark.timeout(60)

SETTINGS = http.HTTPSettings(connect_timeout=30.0, read_timeout=0.5)


def _get_all(session: http.Session, url: str) -> bytes:
    resp = http.get(session, url, SETTINGS)
    body = resp.raw.read()
    http.done_with(resp)
    return body


def _connections(server: FaultServer, path: str) -> list[int]:
    return [r.connection_id for r in server.resource(path).requests]


def test_requests_read_to_the_end_share_one_connection(fault_server: FaultServer, monkeypatch):
    monkeypatch.delenv("http_proxy", raising=False)
    url = fault_server.add("/a.bin", b"a" * 5000)
    session = http.make_session(SETTINGS)
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
    session = http.make_session(SETTINGS)
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


def test_a_stalled_response_times_out_after_read_timeout_not_connect_timeout(fault_server: FaultServer):
    url = fault_server.add("/s.bin", b"s" * 100_000, first_byte_delay=5.0)
    session = http.make_session(SETTINGS)
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
    session = http.make_session(SETTINGS)
    try:
        assert session._origin("http://example.com/a", True).direct == ("example.com", 80)
        assert session._origin("https://example.com/a", True).direct is None  # same host and netloc
        assert session._origin("http://example.com:8080/a", True).direct == ("example.com", 8080)
        proxied = {"http": "http://127.0.0.1:3128"}
        assert session._direct_route("http://elsewhere.example/a", proxied) is None
    finally:
        session.close()
