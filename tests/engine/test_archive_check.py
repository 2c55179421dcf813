"""Archive checks: with no checksum known, a file named like an archive is tested by decompressing it.

The checks alone (fed in odd pieces, as the engine feeds them), then whole downloads from the loopback
server over several connections and over one, resumed ones, file:// copies, and the cases where a
checksum is known (it decides, not the archive check) or the check is turned off.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile

import pytest

from getm_tui.engine import ArchiveDamaged, DownloadError, IntegrityError, Options, download
from getm_tui.engine.archive import check_for
from tests.helpers.archives import KIND_NAMES, archive, cases, data_of, payload, tar_of
from tests.helpers.faultserver import FaultServer

MiB = 1024 * 1024
OPTS = Options(part_size=MiB, retries=2, retry_base=0.01)


def checked(name: str, data: bytes, tmp_path, piece: int = 65_537) -> str | None:
    """What the check of `data` named `name` says: fed in pieces of `piece` bytes, then finished."""
    check = check_for(name)
    assert check is not None
    if check.streaming:
        for at in range(0, len(data), piece):
            check.update(memoryview(data[at : at + piece]))
    path = tmp_path / "whole"
    path.write_bytes(data)
    return check.finish(str(path))


def names(directory) -> list[str]:
    return sorted(os.listdir(directory))


# -- the checks alone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.gz", "gzip"),
        ("A.TGZ", "tar+gzip"),
        ("a.tar.gz", "tar+gzip"),
        ("a.fastq.bz2", "bzip2"),
        ("a.tbz2", "tar+bzip2"),
        ("a.txz", "tar+xz"),
        ("a.tar.zst", "tar+zstd"),
        ("a.zst", "zstd"),
        ("a.xz", "xz"),
        ("a.tar", "tar"),
        ("a.zip", "zip"),
        ("a.bin", None),
        ("a.gz.part", None),
        ("a.tar.lz4", None),
    ],
)
def test_the_check_is_chosen_by_the_name(name, kind):
    check = check_for(name)
    assert (check.kind if check else None) == kind


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "how"), cases())
def test_each_kind_intact_passes_and_damaged_fails(kind, how, tmp_path):
    problem = checked(f"x.{kind}", data_of(kind, how), tmp_path)
    if how == "good":
        assert problem is None
    else:
        assert problem is not None and problem.startswith(KIND_NAMES[kind] + ": ")
        if how == "truncated" and kind != "zip":
            assert "truncated" in problem


def test_concatenated_gzip_members_and_zero_padding_are_intact(tmp_path):
    data = gzip.compress(b"one" * 1000) + gzip.compress(b"two" * 1000) + b"\0" * 4096
    assert checked("x.gz", data, tmp_path, piece=7) is None


def test_garbage_after_the_stream_is_damage(tmp_path):
    problem = checked("x.gz", gzip.compress(b"one" * 1000) + b"<html>error</html>", tmp_path)
    assert problem is not None and "damaged data" in problem


def test_an_empty_or_non_archive_file_is_damage(tmp_path):
    assert checked("x.gz", b"", tmp_path) == "gzip: no compressed data"
    assert "damaged data" in (checked("x.xz", b"not xz at all", tmp_path) or "")
    assert checked("x.zip", b"PK not really", tmp_path) == "zip: File is not a zip file"


def test_a_tar_without_its_end_block_is_truncated(tmp_path):
    whole = tar_of({"a": b"x" * 1000})
    members_only = whole[: 512 + 1024]  # the header and the padded data, no zero block after them
    assert checked("x.tar", whole, tmp_path) is None
    assert "end-of-archive" in (checked("x.tar", members_only, tmp_path) or "")


def test_an_empty_tar_is_intact(tmp_path):
    assert checked("x.tar", tar_of({}), tmp_path) is None


def test_a_pax_size_is_followed(tmp_path):
    # A pax header names the member's size (as for files past 8 GiB); its ustar field says 0.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a")
        info.size = 3000
        info.pax_headers = {"size": "3000"}
        tar.addfile(info, io.BytesIO(b"y" * 3000))
    data = bytearray(buf.getvalue())
    ustar = 1024  # the pax header block and its one block of records come first
    data[ustar + 124 : ustar + 136] = b"00000000000\0"
    checksum = sum(data[ustar : ustar + 148]) + 256 + sum(data[ustar + 156 : ustar + 512])
    data[ustar + 148 : ustar + 156] = b"%06o\0 " % checksum
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        assert tar.getmembers()[0].size == 3000
    assert checked("x.tar", bytes(data), tmp_path, piece=100) is None


# -- downloads -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "how"), cases())
def test_download_over_several_connections(kind, how, fault_server: FaultServer, tmp_path, engine_hygiene):
    data = data_of(kind, how)
    url = fault_server.add(f"/data.{kind}", data)
    if how == "good":
        res = download(url, str(tmp_path), concurrency=4, options=OPTS)
        assert res.connections > 1
        assert (res.verdict, res.archive) == ("unverified", KIND_NAMES[kind])
        assert (tmp_path / f"data.{kind}").read_bytes() == data
        return
    expected = re.escape(f"archive check failed: data.{kind}: {KIND_NAMES[kind]}: ")
    with pytest.raises(ArchiveDamaged, match="^" + expected):
        download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert names(tmp_path) == []  # nothing under the final name, no partial file, no resume record


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tar.gz", "zip", "zst"])
@pytest.mark.parametrize("concurrency", [None, 1])
def test_download_over_one_connection(kind, concurrency, fault_server, tmp_path, engine_hygiene):
    good = fault_server.add(f"/good.{kind}", archive(kind))
    bad = fault_server.add(f"/bad.{kind}", data_of(kind, "truncated"))
    assert download(good, str(tmp_path), concurrency=concurrency, options=OPTS).archive == KIND_NAMES[kind]
    with pytest.raises(ArchiveDamaged):
        download(bad, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert names(tmp_path) == [f"good.{kind}"]


@pytest.mark.slow
def test_a_resumed_download_checks_the_bytes_it_kept(fault_server, tmp_path, engine_hygiene):
    """Bytes kept on disk by the first attempt are read back into the check of the second."""
    data = archive("tar.xz")
    url = fault_server.add("/r.tar.xz", data, drop_after=MiB // 2)
    with pytest.raises(DownloadError):
        download(url, str(tmp_path), concurrency=2, options=Options(part_size=MiB, retries=0))
    assert "r.tar.xz.getm-part" in names(tmp_path)
    fault_server.resource("/r.tar.xz").configure(drop_after=None)
    res = download(url, str(tmp_path), concurrency=2, options=OPTS)
    assert res.resumed > 0 and res.archive == "tar+xz"
    assert (tmp_path / "r.tar.xz").read_bytes() == data


@pytest.mark.slow
def test_damage_in_transit_fails_the_job(fault_server, tmp_path, engine_hygiene):
    """The server sends one byte wrong every time: the download is not committed."""
    data = archive("gz")
    url = fault_server.add("/t.gz", data, corrupt_offset=len(data) // 2)
    with pytest.raises(ArchiveDamaged, match="gzip: damaged data"):
        download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert names(tmp_path) == []


@pytest.mark.slow
def test_a_known_checksum_decides_not_the_archive_check(fault_server, tmp_path, engine_hygiene):
    """A checksum says which bytes were published, even a damaged archive: verified, and committed. A wrong
    one fails as a checksum mismatch, whether the archive is intact or not."""
    bad = data_of("bz2", "corrupted")
    url = fault_server.add("/k.bz2", bad)
    res = download(url, str(tmp_path), options=OPTS, checksum="md5:" + hashlib.md5(bad).hexdigest())
    assert (res.verdict, res.archive) == ("verified", "")
    good_url = fault_server.add("/g.bz2", archive("bz2"))
    with pytest.raises(IntegrityError, match="^checksum mismatch"):
        download(good_url, str(tmp_path), options=OPTS, checksum="md5:" + "0" * 32)
    assert names(tmp_path) == ["k.bz2"]


@pytest.mark.slow
def test_the_check_can_be_turned_off(fault_server, tmp_path, engine_hygiene):
    bad = data_of("xz", "truncated")
    url = fault_server.add("/off.xz", bad)
    res = download(url, str(tmp_path), concurrency=4, options=Options(part_size=MiB, check_archives=False))
    assert (res.verdict, res.archive) == ("unverified", "")
    assert (tmp_path / "off.xz").read_bytes() == bad


def test_a_file_url_copy_is_checked(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.gz").write_bytes(gzip.compress(payload(50_000)))
    (src / "cut.gz").write_bytes(gzip.compress(payload(50_000))[:-10])
    out = tmp_path / "out"
    out.mkdir()
    assert download(f"file://{src}/ok.gz", str(out)).archive == "gzip"
    with pytest.raises(ArchiveDamaged, match="truncated"):
        download(f"file://{src}/cut.gz", str(out))
    assert names(out) == ["ok.gz"]
