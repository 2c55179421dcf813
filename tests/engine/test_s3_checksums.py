"""S3's additional checksums CRC32 and CRC64NVME, whole-object and composite: the hashers, the Verifier,
and downloads from moto (which computes them as S3 does, CRC64NVME through awscrt) and from the fault
server standing in for S3 where the bytes must arrive wrong."""

from __future__ import annotations

import base64
import os
import random
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import awscrt.checksums
import pytest
from crc32c import crc32c as _crc32c

from getm_tui.engine import IntegrityError, Options, download
from getm_tui.engine.checksum import Expected, Verifier, verdict
from getm_tui.engine.crc import CrcHash
from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.s3 import additional_checksums
from tests.helpers.faultserver import FaultServer
from tests.helpers.s3server import S3Server

MiB = 1024 * 1024
PART = 5 * MiB + 4321  # a part size no guess would try: only the HEAD of part 1 tells it


def crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def crc64(data: bytes) -> bytes:
    return awscrt.checksums.crc64nvme(data).to_bytes(8, "big")


def crc32c(data: bytes) -> bytes:
    return int(_crc32c(data)).to_bytes(4, "big")


def composite(fn: Callable[[bytes], bytes], data: bytes, part: int) -> tuple[bytes, int]:
    """S3's composite checksum: the checksum of the parts' checksums, and the part count."""
    sums = [fn(data[i : i + part]) for i in range(0, len(data), part)]
    return fn(b"".join(sums)), len(sums)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_crc_hashes_fed_in_pieces_match_the_libraries() -> None:
    data = random.Random(3).randbytes(200_001)
    for name, whole in (("crc32", crc32), ("crc64nvme", crc64)):
        h = CrcHash(name)
        h.update(memoryview(data)[:7])
        copy = h.copy()
        h.update(memoryview(data)[7:])
        assert h.digest() == whole(data) and h.hexdigest() == whole(data).hex()
        assert copy.digest() == whole(data[:7])  # a copy goes on apart from the original
    assert CrcHash("crc64nvme").digest_size == 8
    assert CrcHash("crc64nvme").hexdigest() == "0" * 16


@pytest.mark.parametrize(("name", "fn"), [("crc32", crc32), ("crc64nvme", crc64), ("crc32c", crc32c)])
def test_composite_checksum_right_and_wrong_bytes(name: str, fn: Callable[[bytes], bytes]) -> None:
    data = random.Random(name).randbytes(3 * 100_000 + 17)
    raw, parts = composite(fn, data, 100_000)
    expected = Expected(name, f"{raw.hex()}-{parts}", f"x-amz-checksum-{name}", part_size=100_000)
    v = Verifier([expected], size=len(data))
    assert v.ordered  # a composite is computed part by part in file order, even for crc32c
    v.update(data)
    (outcome,) = v.finish()
    assert outcome.ok, outcome
    bad = bytearray(data)
    bad[150_000] ^= 1
    v.reset()
    v.update(bad)
    assert verdict(v.finish()) == "mismatch"


def test_additional_checksum_headers() -> None:
    data = b"some bytes"
    full = additional_checksums(
        {"x-amz-checksum-crc64nvme": b64(crc64(data)), "x-amz-checksum-type": "FULL_OBJECT"}
    )
    assert full == [Expected("crc64nvme", crc64(data).hex(), "x-amz-checksum-crc64nvme")]
    raw, _ = composite(crc32, data, 4)
    multi = additional_checksums(
        {"x-amz-checksum-crc32": f"{b64(raw)}-3", "x-amz-checksum-type": "COMPOSITE"}
    )
    assert multi == [Expected("crc32", f"{raw.hex()}-3", "x-amz-checksum-crc32")]
    # A value whose shape contradicts its type, or a part count that is not a number, is not a checksum.
    assert additional_checksums({"x-amz-checksum-crc32": b64(raw), "x-amz-checksum-type": "COMPOSITE"}) == []
    assert additional_checksums({"x-amz-checksum-crc32": f"{b64(raw)}-x"}) == []


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["CRC32", "CRC64NVME"])
def test_moto_object_with_only_a_crc_ends_verified(
    s3_server: S3Server, tmp_path: Path, algorithm: str
) -> None:
    data = os.urandom(2 * MiB + 5)
    key = f"only-{algorithm}.bin"
    s3_server.client.put_object(Bucket=s3_server.bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
    for concurrency in (4, None):
        out = tmp_path / f"c{concurrency}"
        out.mkdir()
        result = download(f"s3://{s3_server.bucket}/{key}", str(out), concurrency=concurrency)
        assert Path(result.path).read_bytes() == data
        assert result.verdict == "verified"
        sums = {o.expected.source: o.ok for o in result.outcomes}
        assert sums[f"x-amz-checksum-{algorithm.lower()}"] is True


@pytest.mark.slow
@pytest.mark.parametrize(("algorithm", "kind"), [("CRC32", "COMPOSITE"), ("CRC64NVME", "FULL_OBJECT")])
def test_moto_multipart_crc_composite_and_full_object(
    s3_server: S3Server, tmp_path: Path, algorithm: str, kind: str
) -> None:
    data = os.urandom(2 * PART + 999)
    key = f"multi-{algorithm}.bin"
    s3_server.put_multipart(key, data, PART, algorithm, kind)
    seen: list[list[Expected]] = []
    result = download(
        f"s3://{s3_server.bucket}/{key}",
        str(tmp_path),
        concurrency=4,
        on_probe=lambda p, _t: seen.append(p.expected),
    )
    assert Path(result.path).read_bytes() == data
    crc = next(e for e in seen[0] if e.algorithm == algorithm.lower())
    if kind == "COMPOSITE":
        assert (crc.value.endswith("-3"), crc.part_size) == (True, PART)
    else:
        assert crc.value == crc64(data).hex()
    assert result.verdict == "verified"
    assert {o.expected.algorithm for o in result.outcomes if o.ok} == {"s3etag", algorithm.lower()}


@pytest.mark.parametrize(
    ("field", "fn"), [("x-amz-checksum-crc32", crc32), ("x-amz-checksum-crc64nvme", crc64)]
)
def test_wrong_bytes_fail_a_crc_check(
    fault_server: FaultServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    field: str,
    fn: Callable[[bytes], bytes],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_server.base_url)
    bucket = f"getm-{uuid.uuid4().hex[:10]}"
    data = os.urandom(300_000)
    fault_server.add(f"/{bucket}/bad.bin", data, corrupt_offset=4321, headers={field: b64(fn(data))})
    with pytest.raises(IntegrityError, match=field):
        download(f"s3://{bucket}/bad.bin", str(tmp_path), options=Options(access=Access(anonymous=True)))
    assert os.listdir(tmp_path) == []
