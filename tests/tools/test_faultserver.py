"""Self-tests for tests/faultserver.py: normal HTTP/1.1 range semantics, then one test per fault option.

Raw sockets are used wherever ``requests`` would hide what is on the wire (framing, truncation, garbage).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.helpers.faultserver import FaultServer

pytestmark = pytest.mark.timeout(30)

DATA = os.urandom(100_000)


@pytest.fixture(autouse=True)
def _no_server_errors(fault_server: FaultServer) -> Iterator[None]:
    """Any non-socket exception inside the server is a bug in the server, whatever the test checks."""
    yield
    assert fault_server.errors == []


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class RawConn:
    """Minimal HTTP/1.1 client over one socket, so tests can see exactly what the server wrote."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, path: str, headers: dict[str, str] | None = None) -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        self.buf += chunk
        return bool(chunk)

    def read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed before end of headers")
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"closed after {len(self.buf)} of {n} bytes")
        out, self.buf = bytes(self.buf[:n]), self.buf[n:]
        return out

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        out, self.buf = bytes(self.buf), bytearray()
        return out

    def read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            while b"\r\n" not in self.buf:
                if not self._fill():
                    raise EOFError("closed inside chunked body")
            size_line, _, rest = bytes(self.buf).partition(b"\r\n")
            self.buf = bytearray(rest)
            size = int(size_line, 16)
            payload = self.read_exact(size + 2)
            if size == 0:
                return bytes(out)
            out += payload[:-2]


@pytest.fixture
def raw(fault_server: FaultServer) -> Iterator[RawConn]:
    conn = RawConn(fault_server.port)
    yield conn
    conn.close()


# --------------------------------------------------------------------------------------------- normal


def test_full_get_headers_and_body(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA)
    assert url == f"{fault_server.base_url}/a.bin"
    r = requests.get(url)
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["Content-Length"] == str(len(DATA))
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["ETag"] == f'"{hashlib.md5(DATA).hexdigest()}"'
    assert r.headers["Last-Modified"].endswith("GMT")
    res = fault_server.resource("/a.bin")
    assert res.bytes_sent == len(DATA)
    assert res.get_count == 1
    [rec] = res.requests
    assert (rec.method, rec.range, rec.status, rec.body_bytes) == ("GET", None, 200, len(DATA))


def test_head_has_headers_but_no_body(fault_server: FaultServer, raw: RawConn) -> None:
    fault_server.add("/a.bin", DATA)
    raw.send("HEAD", "/a.bin")
    status, headers = raw.read_head()
    assert status == 200
    assert headers["content-length"] == str(len(DATA))
    raw.send("GET", "/a.bin", {"Range": "bytes=0-3"})  # next response follows immediately: no HEAD body
    status, headers = raw.read_head()
    assert status == 206
    assert raw.read_exact(4) == DATA[:4]
    assert fault_server.resource("/a.bin").head_count == 1


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=99990-", 99990, 100_000),
        ("bytes=-50", 99950, 100_000),
        ("bytes=0-999999999", 0, 100_000),  # last-byte-pos beyond the end is clamped
        ("bytes=-200000", 0, 100_000),  # suffix longer than the file means the whole file
        ("bytes=99999-99999", 99999, 100_000),
    ],
)
def test_range_forms(fault_server: FaultServer, range_header: str, start: int, end: int) -> None:
    url = fault_server.add("/a.bin", DATA)
    r = requests.get(url, headers={"Range": range_header})
    assert r.status_code == 206
    assert r.content == DATA[start:end]
    assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert r.headers["Content-Length"] == str(end - start)
    assert fault_server.resource("/a.bin").bytes_sent == end - start


@pytest.mark.parametrize("range_header", ["bytes=100000-", "bytes=200000-300000", "bytes=-0"])
def test_unsatisfiable_range_is_416_and_keeps_alive(
    fault_server: FaultServer,
    range_header: str,
) -> None:
    url = fault_server.add("/a.bin", DATA)
    with requests.Session() as s:
        r = s.get(url, headers={"Range": range_header})
        assert r.status_code == 416
        assert r.headers["Content-Range"] == f"bytes */{len(DATA)}"
        assert s.get(url, headers={"Range": "bytes=0-0"}).content == DATA[:1]
    assert fault_server.connections_accepted == 1


@pytest.mark.parametrize("range_header", ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=abc"])
def test_multi_or_malformed_range_is_ignored(fault_server: FaultServer, range_header: str) -> None:
    url = fault_server.add("/a.bin", DATA)
    r = requests.get(url, headers={"Range": range_header})
    assert r.status_code == 200
    assert r.content == DATA


def test_if_range_etag_and_date(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA)
    res = fault_server.resource(url)
    rng = {"Range": "bytes=10-19"}
    cases = [
        (res.etag, 206),
        ('"not-the-etag"', 200),
        ("W/" + res.etag, 200),  # If-Range requires a strong match
        (res.last_modified, 206),
        ("Thu, 01 Jan 2004 00:00:00 GMT", 200),
        ("garbage", 200),
    ]
    with requests.Session() as s:
        for if_range, expected in cases:
            r = s.get(url, headers={**rng, "If-Range": if_range})
            assert r.status_code == expected, if_range
            assert r.content == (DATA[10:20] if expected == 206 else DATA)
    assert [rec.if_range for rec in res.requests] == [c[0] for c in cases]


def test_keep_alive_reuses_one_connection(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA)
    parts = []
    with requests.Session() as s:
        for start in range(0, len(DATA), 25_000):
            r = s.get(url, headers={"Range": f"bytes={start}-{start + 24_999}"})
            assert r.status_code == 206
            parts.append(r.content)
    assert b"".join(parts) == DATA
    assert fault_server.connections_accepted == 1
    assert {rec.connection_id for rec in fault_server.resource("/a.bin").requests} == {1}


def test_unknown_path_is_404_keep_alive(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA)
    with requests.Session() as s:
        assert s.get(fault_server.url("/missing")).status_code == 404
        assert s.get(url).content == DATA
    assert fault_server.connections_accepted == 1


def test_empty_and_quoted_paths(fault_server: FaultServer) -> None:
    url = fault_server.add("dir/with space.bin", b"")
    assert url.endswith("/dir/with%20space.bin")
    r = requests.get(url)
    assert (r.status_code, r.content) == (200, b"")
    assert requests.get(url, headers={"Range": "bytes=0-"}).status_code == 416


@pytest.mark.slow
def test_large_body_streams_intact(fault_server: FaultServer, raw: RawConn) -> None:
    big = os.urandom(64 * 1024 * 1024)
    fault_server.add("/big", big)
    raw.send("GET", "/big")
    status, headers = raw.read_head()
    assert status == 200
    assert int(headers["content-length"]) == len(big)
    h = hashlib.md5(raw.buf)
    got = len(raw.buf)
    buf = bytearray(1 << 20)
    while got < len(big):
        n = raw.sock.recv_into(buf)
        assert n
        h.update(memoryview(buf)[:n])
        got += n
    assert h.digest() == hashlib.md5(big).digest()


def test_concurrent_ranged_downloads(fault_server: FaultServer) -> None:
    data = os.urandom(8 * 1024 * 1024)
    url = fault_server.add("/c.bin", data)
    out = bytearray(len(data))
    piece = 256 * 1024
    workers = 8
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with requests.Session() as s:
                for start in range(index * piece, len(data), workers * piece):
                    r = s.get(url, headers={"Range": f"bytes={start}-{start + piece - 1}"})
                    assert r.status_code == 206
                    out[start : start + piece] = r.content
        except BaseException as exc:  # surfaced in the main thread below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert out == data
    res = fault_server.resource(url)
    assert res.bytes_sent == len(data)
    assert len(res.requests) == len(data) // piece
    assert fault_server.connections_accepted == workers


def test_stop_closes_idle_keep_alive_connections(fault_server: FaultServer, raw: RawConn) -> None:
    fault_server.add("/a.bin", DATA)
    raw.send("GET", "/a.bin", {"Range": "bytes=0-9"})
    raw.read_head()
    assert raw.read_exact(10) == DATA[:10]
    assert fault_server.open_connections == 1
    fault_server.stop()
    assert raw.read_to_eof() == b""
    assert fault_server.open_connections == 0


def test_unknown_option_is_rejected(fault_server: FaultServer) -> None:
    with pytest.raises(TypeError):
        fault_server.add("/a.bin", DATA, drop_aftr=5)


# --------------------------------------------------------------------------------------------- faults


def test_drop_after_truncates_then_recovers(fault_server: FaultServer, raw: RawConn) -> None:
    url = fault_server.add("/a.bin", DATA, drop_after=1000, drop_times=2)
    raw.send("GET", "/a.bin", {"Range": "bytes=5000-"})
    status, headers = raw.read_head()
    assert status == 206
    assert headers["content-length"] == str(len(DATA) - 5000)
    assert raw.read_to_eof() == DATA[5000:6000]  # N bytes counted from the start of *this* body
    with pytest.raises(requests.RequestException):
        requests.get(url).content  # noqa: B018
    r = requests.get(url)  # third response: the two drops are used up
    assert r.content == DATA
    res = fault_server.resource(url)
    assert [(rec.faults, rec.body_bytes) for rec in res.requests] == [
        (["drop"], 1000),
        (["drop"], 1000),
        ([], len(DATA)),
    ]
    assert res.options.drop_times == 0
    assert res.bytes_sent == 2000 + len(DATA)


def test_drop_is_not_eligible_for_short_bodies(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, drop_after=1000, drop_times=1)
    assert requests.get(url, headers={"Range": "bytes=0-499"}).content == DATA[:500]
    with pytest.raises(requests.RequestException):
        requests.get(url).content  # noqa: B018


def test_drop_rst_resets_connection(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, drop_after=10, drop_rst=True)
    with pytest.raises(requests.RequestException):
        requests.get(url).content  # noqa: B018


def test_statuses_with_retry_after(fault_server: FaultServer) -> None:
    url = fault_server.add(
        "/a.bin", DATA, statuses=[503, 429, 500], retry_after="7", headers={"X-Extra": "1"}
    )
    with requests.Session() as s:
        for expected in (503, 429, 500):
            r = s.get(url)
            assert r.status_code == expected
            assert r.headers["Retry-After"] == "7"
            assert "X-Extra" not in r.headers  # extra headers are for successful responses only
            assert r.content != DATA
        r = s.get(url)
        assert (r.status_code, r.content, r.headers["X-Extra"]) == (200, DATA, "1")
        assert "Retry-After" not in r.headers
    assert fault_server.connections_accepted == 1
    assert [rec.status for rec in fault_server.resource(url).requests] == [503, 429, 500, 200]
    assert fault_server.resource(url).bytes_sent == len(DATA)


def test_statuses_apply_to_head_and_http_date_retry_after(fault_server: FaultServer) -> None:
    when = "Wed, 21 Oct 2037 07:28:00 GMT"
    url = fault_server.add("/a.bin", DATA, statuses=[503], retry_after=when)
    r = requests.head(url)
    assert (r.status_code, r.headers["Retry-After"]) == (503, when)
    assert requests.head(url).status_code == 200


def test_ignore_range(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, ignore_range=True)
    r = requests.get(url, headers={"Range": "bytes=10-19"})
    assert (r.status_code, r.content) == (200, DATA)
    assert "Accept-Ranges" not in r.headers
    assert "Content-Range" not in r.headers


def test_range_as_200_lies_about_ranges(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, range_as_200=True)
    r = requests.get(url, headers={"Range": "bytes=10-19"})
    assert (r.status_code, r.content) == (200, DATA)
    assert r.headers["Accept-Ranges"] == "bytes"
    assert "Content-Range" not in r.headers


def test_wrong_content_range(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, wrong_content_range=1, wrong_content_range_times=1)
    r = requests.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 11-20/{len(DATA)}"
    assert r.content == DATA[10:20]
    r = requests.get(url, headers={"Range": "bytes=10-19"})
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(DATA)}"


def test_chunked(fault_server: FaultServer, raw: RawConn) -> None:
    url = fault_server.add("/a.bin", DATA, chunked=True)
    raw.send("GET", "/a.bin", {"Range": "bytes=10-19"})
    status, headers = raw.read_head()
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert "accept-ranges" not in headers
    assert raw.read_chunked() == DATA
    with requests.Session() as s:  # correct framing: the connection is reusable
        assert s.get(url).content == DATA
        assert s.get(url).content == DATA
    assert fault_server.connections_accepted == 2


def test_no_length_is_close_delimited(fault_server: FaultServer, raw: RawConn) -> None:
    url = fault_server.add("/a.bin", DATA, no_length=True)
    raw.send("GET", "/a.bin", {"Range": "bytes=10-19"})
    status, headers = raw.read_head()
    assert status == 200
    assert "content-length" not in headers
    assert headers["connection"] == "close"
    assert raw.read_to_eof() == DATA
    assert requests.get(url).content == DATA


def test_short_body(fault_server: FaultServer, raw: RawConn) -> None:
    url = fault_server.add("/a.bin", DATA, short_body=100, short_body_times=1)
    raw.send("GET", "/a.bin")
    status, headers = raw.read_head()
    assert headers["content-length"] == str(len(DATA))
    assert raw.read_to_eof() == DATA[:-100]
    assert requests.get(url).content == DATA
    assert fault_server.resource(url).requests[0].faults == ["short_body"]


def test_extra_bytes_precede_next_response(fault_server: FaultServer, raw: RawConn) -> None:
    fault_server.add("/a.bin", DATA, extra_bytes=5, extra_bytes_times=1)
    raw.send("GET", "/a.bin", {"Range": "bytes=0-9"})
    status, headers = raw.read_head()
    assert (status, headers["content-length"]) == (206, "10")
    assert raw.read_exact(10) == DATA[:10]
    assert raw.read_exact(5) == b"EXTRA"
    raw.send("GET", "/a.bin", {"Range": "bytes=0-9"})
    status, _ = raw.read_head()  # extra_bytes_times=1: the next response is clean
    assert (status, raw.read_exact(10)) == (206, DATA[:10])
    assert fault_server.resource("/a.bin").bytes_sent == 20


def test_corrupt_offset_with_content_md5(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, corrupt_offset=12345, content_md5=True)
    r = requests.get(url)
    assert r.headers["Content-MD5"] == md5_b64(DATA)  # describes the correct data
    assert r.headers["ETag"] == f'"{hashlib.md5(DATA).hexdigest()}"'
    diffs = [i for i in range(len(DATA)) if r.content[i] != DATA[i]]
    assert diffs == [12345]
    assert r.content[12345] == DATA[12345] ^ 0xFF
    r = requests.get(url, headers={"Range": "bytes=12340-12349"})
    assert r.content[5] == DATA[12345] ^ 0xFF  # file offset, not body offset
    assert r.headers["Content-MD5"] == md5_b64(DATA[12340:12350])
    assert requests.get(url, headers={"Range": "bytes=0-9"}).content == DATA[:10]  # not covered: intact
    assert [rec.faults for rec in fault_server.resource(url).requests] == [["corrupt"], ["corrupt"], []]


def test_content_md5_of_range(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, content_md5=True)
    r = requests.get(url, headers={"Range": "bytes=100-"})
    assert r.headers["Content-MD5"] == md5_b64(DATA[100:])
    assert requests.head(url).headers["Content-MD5"] == md5_b64(DATA)


def test_extra_headers(fault_server: FaultServer) -> None:
    extra = {"x-goog-hash": "crc32c=AAAAAA==", "Content-Disposition": 'attachment; filename="x.bin"'}
    url = fault_server.add("/a.bin", DATA, headers=extra)
    for r in (requests.get(url), requests.get(url, headers={"Range": "bytes=0-1"}), requests.head(url)):
        assert r.headers["x-goog-hash"] == "crc32c=AAAAAA=="
        assert r.headers["Content-Disposition"] == 'attachment; filename="x.bin"'


def test_change_after_requests(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, change_after_requests=2)
    res = fault_server.resource(url)
    first = requests.get(url, headers={"Range": "bytes=0-9"})
    old_etag, old_lm = first.headers["ETag"], first.headers["Last-Modified"]
    assert requests.get(url, headers={"Range": "bytes=10-19", "If-Range": old_etag}).status_code == 206
    assert not res.changed
    r = requests.get(url, headers={"Range": "bytes=20-29", "If-Range": old_etag})
    changed = bytes(b ^ 0x55 for b in DATA)
    assert (r.status_code, r.content) == (200, changed)  # validator mismatch: full new body
    assert r.headers["ETag"] != old_etag
    assert r.headers["ETag"] == f'"{hashlib.md5(changed).hexdigest()}"'
    assert r.headers["Last-Modified"] != old_lm
    assert res.changed
    assert requests.get(url, headers={"Range": "bytes=0-9", "If-Range": old_lm}).status_code == 200


def test_change_after_requests_with_explicit_data(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, change_after_requests=0, changed_data=b"new")
    assert requests.get(url).content == b"new"


@pytest.mark.slow
def test_first_byte_delay_wakes_on_stop(fault_server: FaultServer, raw: RawConn) -> None:
    fault_server.add("/a.bin", DATA, first_byte_delay=120)
    raw.send("GET", "/a.bin")
    status, _ = raw.read_head()  # headers are not delayed
    assert status == 200
    raw.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        raw.read_exact(1)
    raw.sock.settimeout(5)
    fault_server.stop()  # must not wait out the 120 s
    assert raw.read_to_eof() == b""


def test_first_byte_delay_times(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, first_byte_delay=0.05, delay_times=1)
    with requests.Session() as s:
        assert s.get(url).content == DATA
        assert s.get(url).content == DATA
    assert [rec.faults for rec in fault_server.resource(url).requests] == [["delay"], []]


@pytest.mark.slow
def test_stall_after_triggers_client_read_timeout(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, stall_after=1000)
    r = requests.get(url, stream=True, timeout=(5, 0.5))
    assert r.status_code == 200
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        b"".join(r.iter_content(4096))
    r.close()
    assert fault_server.resource(url).requests[0].body_bytes == 1000
    assert fault_server.open_connections == 1  # the stalled handler is still holding its socket
    fault_server.stop()
    assert fault_server.open_connections == 0


@pytest.mark.slow
def test_rate_limit(fault_server: FaultServer) -> None:
    data = os.urandom(2 * 1024 * 1024)
    url = fault_server.add("/slow.bin", data, rate_limit=4 * 1024 * 1024)
    t0 = time.monotonic()
    r = requests.get(url)
    elapsed = time.monotonic() - t0
    assert r.content == data
    assert 0.4 <= elapsed <= 0.75


def test_redirect_to_path(fault_server: FaultServer) -> None:
    target = fault_server.add("/target.bin", DATA)
    url = fault_server.add("/moved", b"", redirect_to="/target.bin")
    r = requests.get(url)
    assert (r.status_code, r.url, r.content) == (200, target, DATA)
    assert r.history[0].status_code == 302
    assert r.history[0].headers["Location"] == "/target.bin"


def test_redirect_loop(fault_server: FaultServer) -> None:
    a = fault_server.add("/a", b"", redirect_to=fault_server.url("/b"), redirect_status=307)
    fault_server.add("/b", b"", redirect_to=a)
    with requests.Session() as s:
        s.max_redirects = 5
        with pytest.raises(requests.TooManyRedirects):
            s.get(a)
    assert fault_server.connections_accepted == 1


def test_deny_after_requests_answers_like_an_expired_signed_url(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA, deny_after_requests=1)
    res = fault_server.resource(url)
    assert requests.get(url + "?X-Amz-Signature=old", headers={"Range": "bytes=0-9"}).status_code == 206
    refused = requests.get(url + "?X-Amz-Signature=old", headers={"Range": "bytes=10-19"})
    assert refused.status_code == 403
    assert "<Message>Request has expired</Message>" in refused.text
    assert res.requests[-1].faults == ["denied"]
    res.configure(deny_after_requests=None)  # a new URL: accepted again
    assert requests.get(url + "?X-Amz-Signature=new", headers={"Range": "bytes=10-19"}).content == DATA[10:20]


def test_serves_on_the_ipv6_loopback() -> None:
    with FaultServer(host="::1") as srv:
        url = srv.add("/six.bin", DATA)
        assert url.startswith(f"http://[::1]:{srv.port}/")
        assert requests.get(url, headers={"Range": "bytes=0-9"}).content == DATA[:10]
        assert srv.errors == []


def test_configure_on_the_fly(fault_server: FaultServer) -> None:
    url = fault_server.add("/a.bin", DATA)
    res = fault_server.resource(url)
    res.configure(statuses=[500])
    assert requests.get(url).status_code == 500
    assert requests.get(url).status_code == 200
    res.set_data(b"replaced")
    assert requests.get(url).content == b"replaced"
    with pytest.raises(TypeError):
        res.configure(bogus=1)


# ------------------------------------------------------------------------------------------ server-wide


def test_tls_serves_https_with_the_given_certificate(tmp_path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with FaultServer(tls=ctx) as server:
        url = server.add("/t.bin", DATA)
        assert url.startswith("https://127.0.0.1:")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, timeout=5)  # the CA is nobody's: refused, and the server goes on
        r = requests.get(url, headers={"Range": "bytes=10-19"}, verify=str(bundle), timeout=5)
        assert r.status_code == 206 and r.content == DATA[10:20]
        assert server.errors == []


@pytest.mark.slow
def test_random_faults_fire_at_the_rate_asked_and_are_repeatable() -> None:
    from tests.helpers.faultserver import RandomFaults

    def run(seed: int) -> tuple[list[list[str]], dict[str, int]]:
        faults = RandomFaults(rate=0.3, seed=seed, kinds=("503", "drop", "short"))
        with FaultServer(random_faults=faults) as s:
            url = s.add("/r.bin", DATA)
            session = requests.Session()
            for _ in range(200):
                try:
                    _ = session.get(url, timeout=5).content
                except requests.RequestException:
                    pass
            faults = [r.faults for r in s.resource("/r.bin").requests]
            assert s.errors == []
            return faults, s.random_fired

    faults, fired = run(5)
    assert set(fired) == {"503", "drop", "short"}
    assert 30 <= sum(fired.values()) <= 90  # 30% of 200, give or take
    assert sum(len(f) for f in faults) == sum(fired.values())
    assert run(5) == (faults, fired)  # the same seed, the same faults on the same requests
    with pytest.raises(ValueError):
        RandomFaults(kinds=("meteor",))
