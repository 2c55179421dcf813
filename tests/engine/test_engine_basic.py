"""The engine end to end against the loopback fault server, with no faults: the happy paths.

Real worker processes, real sockets on 127.0.0.1, real files in tmp_path. Files are a few MiB with 1 MiB
parts so the multi-part and multi-process paths run (files under 1 MiB are read inline whatever the
concurrency).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import unicodedata

import crc32c
import pytest

from getm_tui.engine import (
    DownloadError,
    IntegrityError,
    Options,
    download,
    iter_content,
    urlopen,
)
from tests.helpers.engine_util import read
from tests.helpers.faultserver import FaultServer, Resource
from tests.helpers.stores import MemoryStore

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("engine_hygiene")]

MiB = 1024 * 1024
DATA = random.Random(1).randbytes(5 * MiB + 12_345)  # six 1 MiB parts, the last one short
SMALL = random.Random(2).randbytes(40_000)  # below one part: read inline whatever the concurrency
OPTS = Options(part_size=MiB, retries=3, retry_base=0.01)


# ------------------------------------------------------------------------------------------ hygiene


# ------------------------------------------------------------------------------------------ helpers


def listing(directory: os.PathLike[str] | str) -> list[str]:
    """Every path under `directory`, relative to it, sorted."""
    out = []
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(root, name), directory))
    return sorted(out)


def get_ranges(res: Resource, size: int) -> list[tuple[int, int]]:
    """(start, end) of every ranged GET but the probe's `bytes=0-`, in request order."""
    out = []
    for r in res.requests:
        if r.method != "GET" or r.range is None or r.range == "bytes=0-":
            continue
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", r.range)
        assert m, r.range
        out.append((int(m[1]), int(m[2]) + 1 if m[2] else size))
    return out


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32c_hex(data: bytes) -> str:
    return f"{crc32c.crc32c(data):08x}"


# ------------------------------------------------------------------------------------------ concurrency


@pytest.mark.parametrize("concurrency", [None, 1, 4])
def test_concurrency_modes_give_identical_files(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/data/f.bin", DATA)
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert result.path == str(tmp_path / "f.bin")
    assert read(result.path) == DATA
    assert result.size == len(DATA)
    assert result.verdict == "unverified"
    assert result.outcomes == []
    assert result.crc32c == crc32c_hex(DATA)
    assert result.resumed == 0 and result.restarts == 0 and result.retries == 0
    assert listing(tmp_path) == ["f.bin"]
    res = fault_server.resource("/data/f.bin")
    gets = [r for r in res.requests if r.method == "GET"]
    if concurrency in (None, 1):
        # One stream: the probe's body (inline) or one more request for the whole body (a worker).
        assert len(gets) == (1 if concurrency is None else 2)
        assert res.bytes_sent <= len(DATA) * (1 if concurrency is None else 2)
        assert result.connections == 1


def test_parts_fetched_over_keepalive_connections(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/f.bin", DATA)
    result = download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert read(result.path) == DATA
    assert result.connections == 4
    res = fault_server.resource("/f.bin")
    ranges = get_ranges(res, len(DATA))
    # Every byte is asked for exactly once (no part fetched twice), in parts of at most 1 MiB.
    assert sorted(ranges) == [(s, min(s + MiB, len(DATA))) for s in range(0, len(DATA), MiB)]
    assert all(r.if_range == res.etag for r in res.requests if r.range and r.range != "bytes=0-")
    parts = [r for r in res.requests if r.range and r.range != "bytes=0-"]
    assert all(r.status == 206 for r in parts)
    # 6 parts over 4 worker connections (plus the probe's): some connection served two parts.
    conns = [r.connection_id for r in parts]
    assert len(set(conns)) < len(conns)
    assert fault_server.connections_accepted <= 5
    # The parts' bodies add up to the file exactly: nothing was fetched twice.
    assert sum(r.body_bytes for r in parts) == len(DATA)


@pytest.mark.parametrize("fault", ["ignore_range", "chunked", "no_length", "range_as_200"])
def test_falls_back_to_one_stream(fault_server: FaultServer, tmp_path, fault) -> None:
    url = fault_server.add("/f.bin", DATA, **{fault: True})
    result = download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert read(result.path) == DATA
    assert result.size == len(DATA)
    assert result.connections == 1
    res = fault_server.resource("/f.bin")
    gets = [r for r in res.requests if r.method == "GET"]
    assert len(gets) <= 2
    assert all(r.status == 200 for r in gets)
    assert listing(tmp_path) == ["f.bin"]


@pytest.mark.parametrize("fault", ["chunked", "no_length"])
def test_unknown_size_inline(fault_server: FaultServer, tmp_path, fault) -> None:
    url = fault_server.add("/f.bin", DATA, **{fault: True})
    result = download(url, str(tmp_path), concurrency=None, options=OPTS)
    assert read(result.path) == DATA
    assert result.size == len(DATA)
    assert fault_server.resource("/f.bin").get_count == 1


@pytest.mark.slow
def test_stream_larger_than_its_ring(fault_server: FaultServer, tmp_path) -> None:
    """concurrency=1 streams through a ring of shared memory smaller than the file, and wraps."""
    big = random.Random(3).randbytes(21 * MiB + 7)
    url = fault_server.add("/big.bin", big)
    md5 = hashlib.md5(big).hexdigest()
    result = download(url, str(tmp_path), concurrency=1, checksum=f"md5:{md5}", options=OPTS)
    assert result.verdict == "verified"
    assert read(result.path) == big
    assert fault_server.resource("/big.bin").get_count == 2


# ------------------------------------------------------------------------------------------ checksums


def _user_checksum(algo: str, data: bytes) -> str:
    if algo == "crc32c":
        return f"crc32c:{crc32c_hex(data)}"
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 4])
@pytest.mark.parametrize("algo", ["md5", "sha1", "sha256", "sha512", "crc32c"])
def test_user_checksum_verified(fault_server: FaultServer, tmp_path, algo, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA)
    spec = _user_checksum(algo, DATA)
    result = download(url, str(tmp_path), concurrency=concurrency, checksum=spec, options=OPTS)
    assert result.verdict == "verified"
    [outcome] = result.outcomes
    assert outcome.ok
    assert outcome.expected.algorithm == algo
    assert outcome.expected.source == "user"
    assert outcome.computed == spec.split(":")[1]
    assert read(result.path) == DATA


@pytest.mark.slow
def test_several_user_checksums(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/f.bin", DATA)
    specs = [_user_checksum(a, DATA) for a in ("sha256", "crc32c", "md5")]
    result = download(url, str(tmp_path), concurrency=4, checksum=specs, options=OPTS)
    assert result.verdict == "verified"
    assert [o.expected.algorithm for o in result.outcomes] == ["sha256", "crc32c", "md5"]
    assert all(o.ok for o in result.outcomes)


@pytest.mark.parametrize("concurrency", [None, 4])
@pytest.mark.parametrize("algo", ["sha256", "crc32c"])
def test_wrong_user_checksum_fails_and_leaves_nothing(fault_server: FaultServer, tmp_path, algo, concurrency):
    url = fault_server.add("/f.bin", DATA)
    good = _user_checksum(algo, DATA).split(":")[1]
    bad = ("0" if good[0] != "0" else "1") + good[1:]
    with pytest.raises(IntegrityError) as info:
        download(url, str(tmp_path), concurrency=concurrency, checksum=f"{algo}:{bad}", options=OPTS)
    message = str(info.value)
    assert bad in message and good in message
    assert listing(tmp_path) == []  # no final name, no .getm-part, no .getm-resume


def test_content_md5_verified(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/f.bin", DATA, content_md5=True)
    result = download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert result.verdict == "verified"
    [outcome] = result.outcomes
    assert (outcome.expected.algorithm, outcome.expected.source) == ("md5", "Content-MD5")
    assert outcome.computed == hashlib.md5(DATA).hexdigest()
    assert read(result.path) == DATA


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 4])
def test_corrupt_byte_caught_by_content_md5(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA, content_md5=True, corrupt_offset=3 * MiB + 17)
    with pytest.raises(IntegrityError) as info:
        download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert hashlib.md5(DATA).hexdigest() in str(info.value)
    assert listing(tmp_path) == []


def _goog_hash(data: bytes) -> str:
    crc = crc32c.crc32c(data).to_bytes(4, "big")
    return f"crc32c={b64(crc)},md5={b64(hashlib.md5(data).digest())}"


@pytest.mark.parametrize("concurrency", [None, 4])
def test_x_goog_hash_verified(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA, headers={"x-goog-hash": _goog_hash(DATA)})
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert result.verdict == "verified"
    assert sorted((o.expected.algorithm, o.expected.source, o.ok) for o in result.outcomes) == [
        ("crc32c", "x-goog-hash", True),
        ("md5", "x-goog-hash", True),
    ]
    assert read(result.path) == DATA


def test_x_goog_hash_crc32c_mismatch(fault_server: FaultServer, tmp_path) -> None:
    """crc32c alone is checked from the parts' combined crcs (no ordered hashing): still caught."""
    wrong = b64((crc32c.crc32c(DATA) ^ 1).to_bytes(4, "big"))
    url = fault_server.add("/f.bin", DATA, headers={"x-goog-hash": f"crc32c={wrong}"})
    with pytest.raises(IntegrityError) as info:
        download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert crc32c_hex(DATA) in str(info.value)
    assert listing(tmp_path) == []


def test_repr_digest_sha256_verified(fault_server: FaultServer, tmp_path) -> None:
    digest = f"sha-256=:{b64(hashlib.sha256(DATA).digest())}:"
    url = fault_server.add("/f.bin", DATA, headers={"Repr-Digest": digest})
    result = download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert result.verdict == "verified"
    [outcome] = result.outcomes
    assert (outcome.expected.algorithm, outcome.expected.source, outcome.ok) == (
        "sha256",
        "Repr-Digest",
        True,
    )
    assert read(result.path) == DATA


def test_wrong_repr_digest_fails(fault_server: FaultServer, tmp_path) -> None:
    digest = f"sha-256=:{b64(hashlib.sha256(DATA[:-1]).digest())}:"
    url = fault_server.add("/f.bin", DATA, headers={"Repr-Digest": digest})
    with pytest.raises(IntegrityError):
        download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert listing(tmp_path) == []


def test_small_file_checksum_verified_inline(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/s.bin", SMALL, content_md5=True)
    result = download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert result.verdict == "verified"
    assert read(result.path) == SMALL
    assert fault_server.resource("/s.bin").get_count == 1  # the probe's body was the download


def test_empty_file(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/empty.bin", b"")
    result = download(url, str(tmp_path), concurrency=4, checksum=f"md5:{hashlib.md5(b'').hexdigest()}")
    assert result.verdict == "verified"
    assert result.size == 0
    assert read(result.path) == b""
    assert listing(tmp_path) == ["empty.bin"]


# ------------------------------------------------------------------------------------------ names


def test_existing_file_is_never_overwritten(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/f.bin", SMALL)
    (tmp_path / "f.bin").write_bytes(b"precious")
    first = download(url, str(tmp_path), concurrency=None, options=OPTS)
    second = download(url, str(tmp_path), concurrency=None, options=OPTS)
    assert first.path == str(tmp_path / "f (1).bin")
    assert second.path == str(tmp_path / "f (2).bin")
    assert (tmp_path / "f.bin").read_bytes() == b"precious"
    assert read(first.path) == SMALL and read(second.path) == SMALL
    # An explicit file name that exists is not clobbered either.
    third = download(url, str(tmp_path / "f.bin"), concurrency=None, options=OPTS)
    assert third.path == str(tmp_path / "f (3).bin")
    assert (tmp_path / "f.bin").read_bytes() == b"precious"
    assert listing(tmp_path) == ["f (1).bin", "f (2).bin", "f (3).bin", "f.bin"]


def test_links_at_the_name_or_its_partial_name_are_left_alone(fault_server: FaultServer, tmp_path) -> None:
    """A dangling link counts as taken, at the name and at its partial name alike: the download goes to
    the next free name and neither link, nor what one would point at, is written through."""
    url = fault_server.add("/f.bin", SMALL)
    (tmp_path / "f.bin.getm-part").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "g.bin").symlink_to(tmp_path / "nowhere")
    first = download(url, str(tmp_path), concurrency=None, options=OPTS)
    second = download(fault_server.add("/g.bin", SMALL), str(tmp_path), concurrency=None, options=OPTS)
    assert first.path == str(tmp_path / "f (1).bin")
    assert second.path == str(tmp_path / "g (1).bin")
    assert read(first.path) == SMALL and read(second.path) == SMALL
    assert (tmp_path / "f.bin.getm-part").is_symlink() and (tmp_path / "g.bin").is_symlink()
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "nowhere").exists()


def test_the_partial_file_the_claim_created_is_closed_when_the_download_stops_before_it(
    fault_server, tmp_path
) -> None:
    """choose_target hands the partial file it created, open, to the first attempt: a download that
    stops between the two (here its on_probe raises) closes it all the same."""

    def refuse(probe, path):  # type: ignore[no-untyped-def]
        raise RuntimeError("stopped after the probe")

    url = fault_server.add("/p.bin", b"p" * 5000)
    before = set(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(RuntimeError):
            download(url, str(tmp_path), store=MemoryStore(), options=OPTS, on_probe=refuse)
    left = [_target_of(fd) for fd in set(os.listdir("/proc/self/fd")) - before]
    assert [path for path in left if path.endswith(".getm-part")] == []
    assert sorted(os.listdir(tmp_path)) == ["p (1).bin.getm-part", "p (2).bin.getm-part", "p.bin.getm-part"]


@pytest.mark.parametrize("concurrency", [None, 4])
def test_overwrite_replaces(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA)
    (tmp_path / "f.bin").write_bytes(b"old contents")
    result = download(url, str(tmp_path), concurrency=concurrency, overwrite=True, options=OPTS)
    assert result.path == str(tmp_path / "f.bin")
    assert read(result.path) == DATA
    assert listing(tmp_path) == ["f.bin"]


def test_missing_directory_is_a_usage_error(fault_server: FaultServer, tmp_path) -> None:
    from getm_tui.engine import UsageError

    url = fault_server.add("/f.bin", SMALL)
    with pytest.raises(UsageError):
        download(url, str(tmp_path / "nope" / "x.bin"), concurrency=None)
    assert fault_server.resource("/f.bin").get_count == 0


HOSTILE = {
    "parent": 'attachment; filename="../../etc/x"',
    "absolute": 'attachment; filename="/abs/path"',
    "backslashes": 'attachment; filename="..\\\\..\\\\win.ini"',
    "dots": 'attachment; filename=".."',
    "control": 'attachment; filename="a\x01b\x1b[31mc\x7f.bin"',
    "c1-control": "attachment; filename*=UTF-8''a%C2%9Bb%C2%85c.bin",
    "encoded-traversal": "attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd",
    "encoded-nul": "attachment; filename*=UTF-8''evil%00.bin",
    "long": f'attachment; filename="{"n" * 500}.bin"',
    "long-utf8": "attachment; filename*=UTF-8''" + "%C3%A9" * 300 + ".bin",
    "empty": 'attachment; filename=""',
    "only-slash": 'attachment; filename="/"',
    "garbage": "attachment; filename*=bogus-charset''%FF%FE",
    "only-controls": 'attachment; filename="\x01\x02\x03"',
    "blank": 'attachment; filename="   "',
    "newline": "attachment; filename*=UTF-8''a%0D%0Ab.bin",
    "dotfile": 'attachment; filename=".bashrc"',
    "home": 'attachment; filename="~/.ssh/authorized_keys"',
    "drive": 'attachment; filename="C:\\Windows\\evil.dll"',
    "our-part-suffix": 'attachment; filename="plain.bin.getm-part"',
    "our-resume-suffix": 'attachment; filename="plain.bin.getm-resume"',
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_content_disposition_stays_inside(fault_server: FaultServer, tmp_path, name) -> None:
    target = tmp_path / "dl"
    target.mkdir()
    url = fault_server.add("/data/plain.bin", SMALL, headers={"Content-Disposition": HOSTILE[name]})
    result = download(url, str(target), concurrency=4, options=OPTS)
    # Exactly one file, directly in the target directory, holding the data.
    assert listing(tmp_path) == ["dl", os.path.join("dl", os.path.basename(result.path))]
    assert os.path.dirname(result.path) == str(target)
    assert read(result.path) == SMALL
    base = os.path.basename(result.path)
    assert base not in ("", ".", "..")
    assert "/" not in base and "\\" not in base
    assert not any(unicodedata.category(c) == "Cc" for c in base), repr(base)
    assert len(base.encode()) <= 255
    # Never a name our own cleanup and resume would take for a temporary file of another download.
    assert not base.lower().endswith((".getm-part", ".getm-resume")), base


def test_content_disposition_name_is_used(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/x", SMALL, headers={"Content-Disposition": 'attachment; filename="report.csv"'})
    result = download(url, str(tmp_path), concurrency=None)
    assert result.path == str(tmp_path / "report.csv")


# ------------------------------------------------------------------------------------------ readers


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 1, 4])
def test_urlopen_reads_memoryviews(fault_server: FaultServer, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA, content_md5=True)
    pieces = []
    with urlopen(url, concurrency=concurrency, options=OPTS) as reader:
        assert reader.size == len(DATA)
        while True:
            view = reader.read()
            assert isinstance(view, memoryview)
            if not len(view):
                break
            pieces.append(bytes(view))
        assert reader.read() == b""
        assert [o.ok for o in reader.outcomes] == [True]
    assert b"".join(pieces) == DATA


@pytest.mark.parametrize("concurrency", [None, 1, 4])
def test_urlopen_read_with_size(fault_server: FaultServer, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA)
    pieces = []
    with urlopen(url, concurrency=concurrency, options=OPTS) as reader:
        while view := reader.read(300_001):
            assert isinstance(view, memoryview)
            assert len(view) <= 300_001
            pieces.append(bytes(view))
    assert b"".join(pieces) == DATA


@pytest.mark.parametrize("concurrency", [None, 1, 4])
def test_iter_content(fault_server: FaultServer, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA)
    pieces = []
    for view in iter_content(url, chunk_size=256 * 1024, concurrency=concurrency):
        assert isinstance(view, memoryview)
        assert 0 < len(view) <= 256 * 1024
        pieces.append(bytes(view))
    assert b"".join(pieces) == DATA


@pytest.mark.parametrize("concurrency", [None, 4])
def test_urlopen_checksum_mismatch_raises_at_end(fault_server: FaultServer, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA)
    wrong = "md5:" + hashlib.md5(b"other").hexdigest()
    with urlopen(url, concurrency=concurrency, checksum=wrong, options=OPTS) as reader:
        got = 0
        with pytest.raises(IntegrityError):
            while view := reader.read():
                got += len(view)
        assert got == len(DATA)


def test_urlopen_close_early(fault_server: FaultServer) -> None:
    """Closing a reader part-way stops its workers and frees its shared memory (checked by the fixture)."""
    url = fault_server.add("/f.bin", DATA)
    reader = urlopen(url, concurrency=4, options=OPTS)
    first = bytes(reader.read(1000))
    reader.close()
    assert first == DATA[:1000]
    with pytest.raises(ValueError):
        reader.read()


def test_not_found_url(fault_server: FaultServer, tmp_path) -> None:
    with pytest.raises(DownloadError) as info:
        download(fault_server.url("/missing.bin"), str(tmp_path), concurrency=4, options=OPTS)
    assert "404" in str(info.value)
    assert listing(tmp_path) == []


# ------------------------------------------------------------------------------------------ progress


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 1, 4])
def test_progress_reaches_the_size(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url = fault_server.add("/f.bin", DATA, rate_limit=16 * MiB)  # slow enough for several reports
    seen = []
    download(url, str(tmp_path), concurrency=concurrency, options=OPTS, progress=seen.append)
    assert seen, "no progress reported"
    dones = [p.done for p in seen]
    assert dones == sorted(dones)  # never goes backwards
    assert all(p.size == len(DATA) for p in seen)
    assert dones[-1] == len(DATA)  # the last report says complete


# ------------------------------------------------------------------------------------------ file://


def test_file_url_copy(tmp_path) -> None:
    src = tmp_path / "src" / "a.bin"
    src.parent.mkdir()
    src.write_bytes(SMALL)
    out = tmp_path / "out"
    out.mkdir()
    md5 = hashlib.md5(SMALL).hexdigest()
    result = download(src.as_uri(), str(out), checksum=f"md5:{md5}")
    assert result.verdict == "verified"
    assert read(result.path) == SMALL
    assert listing(out) == ["a.bin"]


def test_file_url_mismatch(tmp_path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(SMALL)
    out = tmp_path / "out"
    out.mkdir()
    bad = hashlib.md5(b"x").hexdigest()
    with pytest.raises(IntegrityError) as info:
        download(src.as_uri(), str(out), checksum=f"md5:{bad}")
    assert bad in str(info.value) and hashlib.md5(SMALL).hexdigest() in str(info.value)
    assert listing(out) == []


def _target_of(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:  # the descriptor listdir itself had open
        return ""
