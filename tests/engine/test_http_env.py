"""The environment a session honours (proxy variables, ~/.netrc) although it reads it once per origin.

requests looks these up on every request; our session keeps the answers for its life, which must change
nothing a user can see: a netrc credential is still sent on every request, and a proxy variable still
routes (or, with no_proxy, does not route) every request.
"""

from __future__ import annotations

import base64
import socket

import pytest

from getm_tui.engine.errors import Retryable
from getm_tui.engine.sources import http, http_session
from tests.helpers.faultserver import FaultServer

pytestmark = pytest.mark.timeout(60)

SETTINGS = http_session.HTTPSettings(connect_timeout=2.0, read_timeout=5.0)


def _fetch(session, url: str) -> bytes:
    resp = http.get(session, url, SETTINGS)
    try:
        return resp.raw.read()
    finally:
        resp.close()


def _fetch_twice(url: str) -> list[bytes | Retryable]:
    """Two requests of one fresh session (the second is answered from its cache): bodies, or the errors."""
    session = http_session.make_session(SETTINGS)
    out: list[bytes | Retryable] = []
    try:
        for _ in range(2):
            try:
                out.append(_fetch(session, url))
            except Retryable as e:
                out.append(e)
    finally:
        session.close()
    return out


def _dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _use_netrc(text: str, tmp_path, monkeypatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(text)
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))


def test_netrc_credentials_go_with_every_request(fault_server: FaultServer, tmp_path, monkeypatch):
    _use_netrc("machine 127.0.0.1 login alice password s3cret\n", tmp_path, monkeypatch)
    first = fault_server.add("/a.bin", b"a" * 1000)
    second = fault_server.add("/b.bin", b"b" * 1000)
    session = http_session.make_session(SETTINGS)
    try:
        assert _fetch(session, first) == b"a" * 1000
        assert _fetch(session, second) == b"b" * 1000
        assert _fetch(session, first) == b"a" * 1000
    finally:
        session.close()
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    seen = [
        r.request_headers.get("Authorization")
        for path in ("/a.bin", "/b.bin")
        for r in fault_server.resource(path).requests
    ]
    assert seen == [expected, expected, expected]


def test_no_netrc_entry_sends_no_credentials(fault_server: FaultServer, tmp_path, monkeypatch):
    _use_netrc("machine elsewhere.example login bob password x\n", tmp_path, monkeypatch)
    url = fault_server.add("/a.bin", b"a" * 1000)
    assert _fetch_twice(url) == [b"a" * 1000] * 2
    assert [r.request_headers.get("Authorization") for r in fault_server.resource("/a.bin").requests] == [
        None,
        None,
    ]


def test_proxy_variables_route_every_request_of_a_session(fault_server: FaultServer, monkeypatch):
    url = fault_server.add("/a.bin", b"a" * 1000)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{_dead_port()}")
    assert all(isinstance(result, Retryable) for result in _fetch_twice(url))  # both through the proxy
    assert fault_server.resource("/a.bin").requests == []

    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert _fetch_twice(url) == [b"a" * 1000] * 2
    assert len(fault_server.resource("/a.bin").requests) == 2
