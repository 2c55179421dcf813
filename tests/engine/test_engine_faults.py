"""The engine against misbehaving servers: drops, error statuses, lies about ranges, changing files, stalls.

Each fault is injected by the loopback fault server a counted number of times (`*_times`), and each test
checks the bytes on disk and what the server saw, so a fault that is silently ignored fails the test.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from getm_tui.engine import DownloadError, HTTPSettings, IntegrityError, Options, download, urlopen
from tests.helpers.engine_util import read
from tests.helpers.faultserver import FaultServer, Resource

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("engine_hygiene")]

MiB = 1024 * 1024
DATA = random.Random(11).randbytes(4 * MiB + 4321)  # five parts of at most 1 MiB
NEW = random.Random(12).randbytes(len(DATA))  # what the remote file becomes
OPTS = Options(part_size=MiB, retries=4, retry_base=0.01)
MODES = [None, 1, 4]


def gets(res: Resource) -> list:
    return [r for r in res.requests if r.method == "GET"]


def fired(res: Resource, fault: str) -> int:
    return sum(1 for r in res.requests if fault in r.faults)


def ranges_after_probe(res: Resource) -> list[tuple[int, int | None]]:
    out = []
    for r in gets(res)[1:]:
        if r.range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", r.range)
            assert m, r.range
            out.append((int(m[1]), int(m[2]) if m[2] else None))
    return out


# ------------------------------------------------------------------------------------------ transient


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", MODES)
def test_drop_mid_body_is_resumed(fault_server: FaultServer, tmp_path, concurrency) -> None:
    # Three drops: with parts the probe's abandoned body may take one, the parts get the others.
    url = fault_server.add("/f.bin", DATA, drop_after=300_000, drop_times=3)
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert read(result.path) == DATA
    res = fault_server.resource("/f.bin")
    assert res.options.drop_times == 0
    assert fired(res, "drop") == 3
    # After a drop the request continues where it stopped (a range not starting at a part boundary).
    assert any(start % MiB == 300_000 % MiB for start, _ in ranges_after_probe(res))
    assert result.retries >= 2
    if concurrency is None:
        assert res.bytes_sent == len(DATA)  # resumed, not restarted: each byte went over the wire once


@pytest.mark.parametrize("concurrency", [None, 4])
def test_drop_with_reset(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA, drop_after=500_000, drop_times=3, drop_rst=True)
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert read(result.path) == DATA
    assert fault_server.resource("/f.bin").options.drop_times == 0


def test_drop_every_time_gives_up(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/f.bin", DATA, drop_after=0)
    opts = Options(part_size=MiB, retries=2, retry_base=0.01)
    with pytest.raises(DownloadError) as info:
        download(url, str(tmp_path), concurrency=None, options=opts)
    assert "retries" in str(info.value)
    assert not (tmp_path / "f.bin").exists()
    assert fault_server.resource("/f.bin").get_count == 3  # the first attempt and two retries


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", MODES)
def test_drop_every_few_kib_gives_up(fault_server: FaultServer, tmp_path, concurrency) -> None:
    """Each response dies after 20 KB: a little progress each time must not earn the retries back for ever."""
    url = fault_server.add("/f.bin", DATA, drop_after=20_000)
    opts = Options(part_size=MiB, retries=3, retry_base=0.01)
    with pytest.raises(DownloadError) as info:
        download(url, str(tmp_path), concurrency=concurrency, options=opts)
    assert "giving up after 3 retries" in str(info.value)
    # The probe and three retries per part at most (the inline path has one part): no endless loop.
    assert fault_server.resource("/f.bin").get_count <= 1 + 5 * 4
    assert not (tmp_path / "f.bin").exists()


def test_urlopen_drop_every_few_kib_gives_up(fault_server: FaultServer) -> None:
    url = fault_server.add("/f.bin", DATA, drop_after=20_000)
    opts = Options(part_size=MiB, retries=3, retry_base=0.01)
    with urlopen(url, concurrency=None, options=opts) as reader, pytest.raises(DownloadError) as info:
        while reader.read():
            pass
    assert "giving up after 3 retries" in str(info.value)
    assert fault_server.resource("/f.bin").get_count == 4


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", MODES)
def test_retryable_statuses_on_probe(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA, statuses=[503, 429], retry_after="0")
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert read(result.path) == DATA
    statuses = [r.status for r in gets(fault_server.resource("/f.bin"))]
    assert statuses[:3] == [503, 429, 206]


@pytest.mark.slow
def test_retryable_statuses_on_parts(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/f.bin", DATA)
    res = fault_server.resource("/f.bin")

    def after_probe(probe, target) -> None:
        res.configure(statuses=[503, 429, 500], retry_after="0")

    result = download(url, str(tmp_path), concurrency=4, options=OPTS, on_probe=after_probe)
    assert read(result.path) == DATA
    assert result.retries == 3
    assert [r.status for r in gets(res)].count(206) == 1 + 5  # the probe and five parts


@pytest.mark.slow
def test_retry_after_is_honoured(fault_server: FaultServer, tmp_path) -> None:
    """A Retry-After of 1 s with a tiny backoff base: the retry comes no sooner than 1 s later."""
    import time

    url = fault_server.add("/f.bin", DATA[:100_000], statuses=[503], retry_after=1)
    started = time.monotonic()
    result = download(url, str(tmp_path), concurrency=None, options=OPTS)
    assert time.monotonic() - started >= 1.0
    assert read(result.path) == DATA[:100_000]


@pytest.mark.parametrize("concurrency", [None, 4])
def test_404_fails_at_once(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA, statuses=[404])
    with pytest.raises(DownloadError) as info:
        download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert "404" in str(info.value)
    assert fault_server.resource("/f.bin").get_count == 1  # no retries
    assert os.listdir(tmp_path) == []


def test_403_on_a_part_fails_without_retries(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/f.bin", DATA)
    res = fault_server.resource("/f.bin")

    def after_probe(probe, target) -> None:
        res.configure(statuses=[403])

    with pytest.raises(DownloadError) as info:
        download(url, str(tmp_path), concurrency=4, options=OPTS, on_probe=after_probe)
    assert "403" in str(info.value)
    assert [r.status for r in gets(res)].count(403) == 1
    assert not (tmp_path / "f.bin").exists()


@pytest.mark.parametrize("concurrency", MODES)
def test_short_body(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA, short_body=1000, short_body_times=3)
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert read(result.path) == DATA
    res = fault_server.resource("/f.bin")
    assert fired(res, "short_body") == 3


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", MODES)
def test_extra_bytes_after_bodies(fault_server: FaultServer, tmp_path, concurrency) -> None:
    """Garbage after every body: the next response on that keep-alive connection is unparsable."""
    url = fault_server.add("/f.bin", DATA, extra_bytes=100)
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert read(result.path) == DATA


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 1, 4])
def test_wrong_content_range(fault_server: FaultServer, tmp_path, concurrency) -> None:
    # The first two 206 answers claim the wrong range: the probe's (retried) and then a part's.
    url = fault_server.add("/f.bin", DATA, wrong_content_range=5, wrong_content_range_times=2)
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert read(result.path) == DATA
    assert fired(fault_server.resource("/f.bin"), "wrong_content_range") == 2


@pytest.mark.slow
def test_wrong_content_range_on_a_part(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/f.bin", DATA)
    res = fault_server.resource("/f.bin")

    def after_probe(probe, target) -> None:
        res.configure(wrong_content_range=7, wrong_content_range_times=2)

    result = download(url, str(tmp_path), concurrency=4, options=OPTS, on_probe=after_probe)
    assert read(result.path) == DATA
    assert fired(res, "wrong_content_range") == 2
    assert result.retries == 2


@pytest.mark.parametrize("concurrency", MODES)
def test_more_bytes_than_content_length_are_never_written(
    fault_server: FaultServer, tmp_path, concurrency
) -> None:
    """Every response carries 1000 bytes past its Content-Length: the file is Content-Length long, no more."""
    url = fault_server.add("/f.bin", DATA, extra_bytes=1000)
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    res = fault_server.resource("/f.bin")
    assert fired(res, "extra_bytes") >= 1
    assert os.path.getsize(result.path) == len(DATA) == result.size
    assert read(result.path) == DATA
    assert os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.slow
def test_range_answered_with_200_mid_download(fault_server: FaultServer, tmp_path) -> None:
    """Ranges worked for the probe, then the parts get the whole file (200): start over as one stream."""
    url = fault_server.add("/f.bin", DATA)
    res = fault_server.resource("/f.bin")

    def after_probe(probe, target) -> None:
        res.configure(range_as_200=True)

    result = download(url, str(tmp_path), concurrency=4, options=OPTS, on_probe=after_probe)
    assert read(result.path) == DATA
    assert result.restarts == 1 and result.connections == 1
    assert fired(res, "range_ignored") >= 2  # a part's range, and the second probe's
    assert os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.parametrize("concurrency", MODES)
def test_drop_in_chunked_stream_restarts(fault_server: FaultServer, tmp_path, concurrency) -> None:
    """A chunked body cut short (http.client's IncompleteRead) is retried from byte 0: no ranges here."""
    url = fault_server.add("/f.bin", DATA, chunked=True, drop_after=1_000_000, drop_times=2)
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert read(result.path) == DATA
    assert result.retries >= 1
    assert all(r.range is None for r in gets(fault_server.resource("/f.bin"))[1:])


# ------------------------------------------------------------------------------------------ changes


# concurrency: (GETs that see the old file, drops). A drop makes the inline and stream paths send a
# ranged If-Range request after the change (the stream's first drop is on the abandoned probe).
CHANGE = {None: (1, 1), 1: (2, 2), 4: (2, 0)}


@pytest.mark.parametrize("concurrency", MODES)
def test_remote_file_changes_mid_download(fault_server: FaultServer, tmp_path, concurrency) -> None:
    """The file changes after the first GETs: the download starts over and yields only the new data."""
    old_gets, drops = CHANGE[concurrency]
    url = fault_server.add(
        "/f.bin",
        DATA,
        change_after_requests=old_gets,
        changed_data=NEW,
        drop_after=1_500_000,
        drop_times=drops,
    )
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    res = fault_server.resource("/f.bin")
    assert res.changed
    assert read(result.path) == NEW
    assert result.restarts == 1
    assert os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.slow
def test_remote_file_changes_verified_against_new_checksum(fault_server: FaultServer, tmp_path) -> None:
    """Hashers restart with the download: Content-MD5 of the new file verifies the new bytes."""
    url = fault_server.add("/f.bin", DATA, change_after_requests=3, changed_data=NEW, content_md5=True)
    result = download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert read(result.path) == NEW
    assert result.verdict == "verified"
    assert result.outcomes[0].computed == hashlib.md5(NEW).hexdigest()


@pytest.mark.slow
def test_remote_file_keeps_changing(fault_server: FaultServer, tmp_path) -> None:
    """Every attempt sees the file change under it: after max_restarts the download fails clearly."""
    url = fault_server.add("/f.bin", DATA, rate_limit=2 * MiB)
    res = fault_server.resource("/f.bin")
    state = {"probes": 0, "flips": 0}

    def change_once_per_attempt(progress) -> None:
        # A new probe since the last change means a new attempt is under way: change the file again.
        probes = sum(1 for r in res.requests if r.range == "bytes=0-")
        if probes > state["probes"]:
            state["flips"] += 1
            res.set_data(NEW if state["flips"] % 2 else DATA)
            state["probes"] = probes

    opts = Options(part_size=MiB, retries=4, retry_base=0.01, max_restarts=2)
    with pytest.raises(DownloadError) as info:
        download(url, str(tmp_path), concurrency=4, options=opts, progress=change_once_per_attempt)
    assert "keeps changing" in str(info.value)
    assert state["flips"] == 3  # the first attempt and two restarts
    assert not (tmp_path / "f.bin").exists()


@pytest.mark.slow
def test_change_with_user_checksum_of_old_data(fault_server: FaultServer, tmp_path) -> None:
    """A user checksum of the old file and a file that changed: a mismatch, and no mixed file anywhere."""
    url = fault_server.add("/f.bin", DATA, change_after_requests=3, changed_data=NEW)
    with pytest.raises(IntegrityError):
        download(
            url, str(tmp_path), concurrency=4, checksum=f"md5:{hashlib.md5(DATA).hexdigest()}", options=OPTS
        )
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------ slow servers


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 4])
def test_first_byte_delay_within_read_timeout(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA, first_byte_delay=0.3, delay_times=2)
    opts = Options(part_size=MiB, retries=0, retry_base=0.01, http=HTTPSettings(read_timeout=2.0))
    result = download(url, str(tmp_path), concurrency=concurrency, options=opts)
    assert read(result.path) == DATA
    res = fault_server.resource("/f.bin")
    assert fired(res, "delay") == min(2, res.get_count)
    assert result.retries == 0


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", MODES)
def test_stall_is_retried_after_read_timeout(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA)
    res = fault_server.resource("/f.bin")

    def after_probe(probe, target) -> None:
        # Parallel modes abandon the probe's body: stall one of the requests that follow instead.
        if concurrency is not None:
            res.configure(stall_after=200_000, stall_times=1)

    if concurrency is None:
        res.configure(stall_after=200_000, stall_times=1)
    # A connect timeout far from the read timeout: a stall must cost the read timeout, not the other.
    http_settings = HTTPSettings(read_timeout=0.5, connect_timeout=30.0)
    opts = Options(part_size=MiB, retries=3, retry_base=0.01, http=http_settings)
    started = time.monotonic()
    result = download(url, str(tmp_path), concurrency=concurrency, options=opts, on_probe=after_probe)
    assert read(result.path) == DATA
    assert fired(res, "stall") == 1
    assert result.retries == 1
    assert time.monotonic() - started < 10.0


@pytest.mark.slow
def test_rate_limited_connections(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/f.bin", DATA, rate_limit=4 * MiB)
    result = download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert read(result.path) == DATA
    assert result.connections == 4
    # Four connections were busy at once: the parts were spread over more than one connection.
    conns = {r.connection_id for r in gets(fault_server.resource("/f.bin"))[1:]}
    assert len(conns) >= 2


@pytest.mark.slow
def test_engine_rate_limit(fault_server: FaultServer, tmp_path) -> None:
    """Options.rate_limit caps the whole download (split over its connections)."""
    import time

    size = 2 * MiB
    url = fault_server.add("/f.bin", DATA[:size])
    opts = Options(part_size=MiB, retries=2, retry_base=0.01, rate_limit=4 * MiB)
    started = time.monotonic()
    result = download(url, str(tmp_path), concurrency=2, options=opts)
    assert read(result.path) == DATA[:size]
    assert time.monotonic() - started >= 0.3  # 2 MiB at 4 MiB/s takes 0.5 s; leave slack for startup


# ------------------------------------------------------------------------------------------ redirects


def test_redirect_is_followed(fault_server: FaultServer, tmp_path) -> None:
    fault_server.add("/real.bin", DATA)
    url = fault_server.add("/link", b"", redirect_to="/real.bin")
    result = download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert read(result.path) == DATA
    assert os.path.basename(result.path) == "real.bin"
    # The parts went straight to the redirect's target.
    assert fault_server.resource("/link").get_count == 1


@pytest.mark.parametrize("concurrency", [None, 4])
def test_redirect_loop(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/a", b"", redirect_to="/b")
    fault_server.add("/b", b"", redirect_to="/a")
    with pytest.raises(DownloadError) as info:
        download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert "too many redirects" in str(info.value)
    total = fault_server.resource("/a").get_count + fault_server.resource("/b").get_count
    assert total == HTTPSettings().max_redirects + 1
    assert os.listdir(tmp_path) == []


def chain(server: FaultServer, hops: int, final: str) -> str:
    """A chain of `hops` redirects ending at `final`; returns the first URL."""
    for i in range(hops - 1, -1, -1):
        server.add(f"/hop{i}", b"", redirect_to=f"/hop{i + 1}" if i < hops - 1 else final)
    return server.url("/hop0")


@pytest.mark.parametrize("concurrency", [None, 4])
def test_redirects_up_to_the_limit_are_followed(fault_server: FaultServer, tmp_path, concurrency) -> None:
    fault_server.add("/real.bin", DATA)
    url = chain(fault_server, HTTPSettings().max_redirects, "/real.bin")
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert read(result.path) == DATA
    assert os.listdir(tmp_path) == ["real.bin"]


@pytest.mark.parametrize(("limit", "hops"), [(10, 11), (2, 3), (0, 1)])
def test_too_many_redirects(fault_server: FaultServer, tmp_path, limit, hops) -> None:
    """One redirect more than max_redirects: a clear failure, the target never asked for, nothing written."""
    fault_server.add("/real.bin", DATA)
    url = chain(fault_server, hops, "/real.bin")
    opts = Options(part_size=MiB, retries=4, retry_base=0.01, http=HTTPSettings(max_redirects=limit))
    with pytest.raises(DownloadError) as info:
        download(url, str(tmp_path), concurrency=4, options=opts)
    assert f"too many redirects (more than {limit})" in str(info.value)
    assert fault_server.resource("/real.bin").get_count == 0
    assert sum(fault_server.resource(f"/hop{i}").get_count for i in range(hops)) == limit + 1
    assert os.listdir(tmp_path) == []


@pytest.fixture
def https_redirector(tmp_path_factory, fault_server: FaultServer) -> Iterator[str]:
    """A loopback HTTPS server (self-signed) that redirects every GET to the fault server's http URL."""
    certdir = tmp_path_factory.mktemp("tls")
    cert, key = certdir / "cert.pem", certdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    target = fault_server.add("/plain.bin", DATA[:50_000])

    class Redirect(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/secure.bin"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_https_to_http_redirect_refused(https_redirector: str, fault_server: FaultServer, tmp_path) -> None:
    opts = Options(retries=0, http=HTTPSettings(verify_tls=False))
    with pytest.raises(DownloadError) as info:
        download(https_redirector, str(tmp_path), concurrency=None, options=opts)
    assert "https to http" in str(info.value)
    assert fault_server.resource("/plain.bin").get_count == 0
    assert os.listdir(tmp_path) == []


def test_https_to_http_redirect_allowed_when_asked(https_redirector: str, tmp_path) -> None:
    opts = Options(retries=0, http=HTTPSettings(verify_tls=False, allow_insecure_redirect=True))
    result = download(https_redirector, str(tmp_path), concurrency=None, options=opts)
    assert read(result.path) == DATA[:50_000]


def test_self_signed_tls_refused_by_default(https_redirector: str, tmp_path) -> None:
    with pytest.raises(DownloadError) as info:
        download(https_redirector, str(tmp_path), concurrency=None, options=Options(retries=0))
    assert "TLS" in str(info.value)


# ------------------------------------------------------------------------------------------ readers


@pytest.mark.parametrize("concurrency", [None, 1])
def test_urlopen_chunked_drop_fails_clearly(fault_server: FaultServer, concurrency) -> None:
    """Bytes already handed out cannot be fetched again without ranges: a DownloadError, not a mix."""
    # With a worker the probe's abandoned body takes the first drop.
    drops = 1 if concurrency is None else 2
    url = fault_server.add("/f.bin", DATA, chunked=True, drop_after=1_500_000, drop_times=drops)
    with urlopen(url, concurrency=concurrency, options=OPTS) as reader:
        got = bytearray()
        with pytest.raises(DownloadError):
            while view := reader.read():
                got += view
    assert 0 < len(got) < len(DATA)
    assert DATA.startswith(got)  # what was handed out is the file's start, never repeated


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", MODES)
def test_urlopen_survives_drops(fault_server: FaultServer, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA, drop_after=700_000, drop_times=2)
    with urlopen(url, concurrency=concurrency, options=OPTS) as reader:
        got = b"".join(bytes(v) for v in reader)
    assert got == DATA


# ------------------------------------------------------------------------------------------ pools


@pytest.mark.slow
def test_one_pool_across_failed_cancelled_and_good_downloads(fault_server: FaultServer, tmp_path) -> None:
    """What the supervisor does: reuse one WorkerPool; a failure or cancel must not spoil the next job."""
    from getm_tui.engine import Cancelled
    from getm_tui.engine.workers import WorkerPool

    url = fault_server.add("/f.bin", DATA)
    res = fault_server.resource("/f.bin")
    with WorkerPool(OPTS.http) as pool:
        # 1. a part answered 403: fatal, the other parts are cancelled.
        (tmp_path / "1").mkdir()
        with pytest.raises(DownloadError):
            download(
                url,
                str(tmp_path / "1"),
                concurrency=4,
                options=OPTS,
                pool=pool,
                on_probe=lambda probe, target: res.configure(statuses=[403]),
            )
        # 2. cancelled part-way through throttled parts (workers report each 1 MiB they read: eight
        # parts at 2 MiB/s leave the second four in flight when the cancel comes).
        slow = fault_server.add("/slow.bin", DATA + NEW, rate_limit=2 * MiB)
        cancel = threading.Event()
        (tmp_path / "2").mkdir()
        with pytest.raises(Cancelled):
            download(
                slow,
                str(tmp_path / "2"),
                concurrency=4,
                options=OPTS,
                pool=pool,
                cancel=cancel,
                progress=lambda p: cancel.set() if p.done > MiB else None,
            )
        assert (tmp_path / "2" / "slow.bin.getm-resume").exists()
        # 3. the remote file changes mid-way: a restart on the same pool.
        res.configure(rate_limit=None, change_after_requests=res.get_count + 2, changed_data=NEW)
        (tmp_path / "3").mkdir()
        result = download(url, str(tmp_path / "3"), concurrency=4, options=OPTS, pool=pool)
        assert read(result.path) == NEW
        assert result.restarts == 1
        # 4. and a plain download with a checksum, on workers that have seen all of the above.
        md5 = hashlib.md5(NEW).hexdigest()
        result = download(
            url, str(tmp_path / "1"), concurrency=4, checksum=f"md5:{md5}", options=OPTS, pool=pool
        )
        assert result.verdict == "verified"
        assert read(result.path) == NEW
        # 5. and the cancelled one resumes on them.
        fault_server.resource("/slow.bin").configure(rate_limit=None)
        result = download(slow, str(tmp_path / "2"), concurrency=4, options=OPTS, pool=pool)
        assert result.resumed > 0
        assert read(result.path) == DATA + NEW
        assert all(w.process.is_alive() for w in pool.workers)
