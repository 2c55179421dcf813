"""Unit tests for getm_tui.engine.checksum (parsing expectations, in-pass verification), checksum_headers
(what servers advertise) and crc (crc32c combination)."""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import time
import zlib
from collections.abc import Iterator

import awscrt.checksums
import crc32c
import pytest
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPHeaderDict

from getm_tui.engine import checksum, checksum_headers
from getm_tui.engine.checksum import (
    ALGORITHMS,
    ChecksumSpecError,
    Expected,
    MiB,
    Outcome,
    Verifier,
    parse_user_checksum,
    s3_part_size_candidates,
    verdict,
)
from getm_tui.engine.checksum_headers import from_headers
from getm_tui.engine.crc import crc32c_combine

HELLO = b"hello world\n"


def hexdigest(algo: str, data: bytes) -> str:
    if algo == "crc32c":
        return f"{crc32c.crc32c(data):08x}"
    if algo == "crc32":
        return f"{zlib.crc32(data):08x}"
    if algo == "crc64nvme":
        return f"{awscrt.checksums.crc64nvme(data):016x}"
    return hashlib.new(algo, data).hexdigest()


def b64(hex_: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_)).decode()


def s3_multipart_etag(data: bytes, part_size: int) -> str:
    """What S3 reports for `data` uploaded in parts of `part_size` bytes."""
    digests = [hashlib.md5(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def headers(**kv: str) -> CaseInsensitiveDict[str]:
    """Response headers as requests gives them; `x_amz_request_id` becomes `x-amz-request-id`."""
    return CaseInsensitiveDict({k.replace("_", "-"): v for k, v in kv.items()})


def irregular_chunks(data: bytes) -> Iterator[memoryview]:
    """Slices of `data` in awkward sizes: single bytes, odd sizes, and spans across 5/8 MiB boundaries."""
    sizes = [1, 4095, 3 * MiB + 7, 8 * MiB, 5 * MiB - 1, 123_457, 2, 6 * MiB + 1]
    mv = memoryview(data)
    pos = i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        yield mv[pos : pos + n]
        pos += n
        i += 1


@pytest.fixture(scope="module")
def body() -> bytes:
    """20 MiB + 3 random bytes: three parts of 8 MiB (or of 7 MiB), the last one short."""
    return random.Random(1234).randbytes(20 * MiB + 3)


# --- parse_user_checksum ------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_parse_user_checksum_each_algorithm(algo: str) -> None:
    value = hexdigest(algo, HELLO)
    assert parse_user_checksum(f"{algo}:{value}") == Expected(algo, value, "user")
    # Case-insensitive algorithm, uppercase hex and surrounding blanks are fine; the value is normalised.
    assert parse_user_checksum(f"  {algo.upper()}:{value.upper()} ") == Expected(algo, value, "user")


def test_parse_user_checksum_unknown_algorithm_lists_known() -> None:
    with pytest.raises(ChecksumSpecError) as info:
        parse_user_checksum("blake3:" + "ab" * 32)
    msg = str(info.value)
    assert "blake3" in msg and "\n" not in msg
    for algo in ALGORITHMS:
        assert algo in msg


def test_parse_user_checksum_rejects_etag() -> None:
    with pytest.raises(ChecksumSpecError, match="unknown checksum algorithm 'etag'"):
        parse_user_checksum("etag:" + "ab" * 16 + "-3")


@pytest.mark.parametrize("value", ["xyz" + "0" * 61, "0x" + "0" * 62, "ab cd" + "0" * 59, "-1" * 32])
def test_parse_user_checksum_bad_hex(value: str) -> None:
    with pytest.raises(ChecksumSpecError, match="not hexadecimal"):
        parse_user_checksum(f"sha256:{value}")


@pytest.mark.parametrize(
    ("text", "want", "got"),
    [("sha256:" + "a" * 63, 64, 63), ("md5:" + "a" * 40, 32, 40), ("crc32c:1234567", 8, 7)],
)
def test_parse_user_checksum_wrong_length(text: str, want: int, got: int) -> None:
    with pytest.raises(ChecksumSpecError, match=f"must be {want} hex digits, got {got}"):
        parse_user_checksum(text)


@pytest.mark.parametrize("text", ["", "d41d8cd98f00b204e9800998ecf8427e", ":abcd", "md5:"])
def test_parse_user_checksum_malformed(text: str) -> None:
    with pytest.raises(ChecksumSpecError) as info:
        parse_user_checksum(text)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


# --- from_headers -------------------------------------------------------------------------------------

MD5 = hexdigest("md5", HELLO)
SHA1 = hexdigest("sha1", HELLO)
SHA256 = hexdigest("sha256", HELLO)
SHA512 = hexdigest("sha512", HELLO)
CRC = hexdigest("crc32c", HELLO)


def test_content_md5_full_body_only() -> None:
    h = headers(Content_MD5=b64(MD5))
    assert from_headers(h, full_body=True) == [Expected("md5", MD5, "Content-MD5")]
    assert from_headers(h, full_body=False) == []


def test_content_md5_hex_form_accepted() -> None:
    assert from_headers(headers(Content_MD5=MD5.upper()), full_body=True) == [
        Expected("md5", MD5, "Content-MD5")
    ]


@pytest.mark.parametrize("bad", ["not base64!", b64(SHA256), "", "AAAA"])
def test_content_md5_malformed_ignored_with_warning(bad: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=checksum_headers.__name__):
        assert from_headers(headers(Content_MD5=bad), full_body=True) == []
    assert any("Content-MD5" in r.getMessage() for r in caplog.records)


def test_x_goog_hash() -> None:
    h = headers(x_goog_hash=f"crc32c={b64(CRC)},md5={b64(MD5)}")
    want = [Expected("crc32c", CRC, "x-goog-hash"), Expected("md5", MD5, "x-goog-hash")]
    assert from_headers(h, full_body=True) == want
    # The hashes describe the whole object, so they also count on a range response.
    assert from_headers(h, full_body=False) == want


def test_x_goog_hash_repeated_header() -> None:
    raw = HTTPHeaderDict()
    raw.add("x-goog-hash", f"crc32c={b64(CRC)}")
    raw.add("X-Goog-Hash", f"md5={b64(MD5)}")
    h = CaseInsensitiveDict(raw)  # what requests builds from urllib3's headers
    assert from_headers(h, full_body=False) == [
        Expected("crc32c", CRC, "x-goog-hash"),
        Expected("md5", MD5, "x-goog-hash"),
    ]
    # A plain dict with two spellings of the name is merged the same way.
    plain = {"x-goog-hash": f"crc32c={b64(CRC)}", "X-Goog-Hash": f"md5={b64(MD5)}"}
    assert from_headers(plain, full_body=False) == from_headers(h, full_body=False)


def test_x_goog_hash_malformed_and_unknown(caplog: pytest.LogCaptureFixture) -> None:
    h = headers(x_goog_hash=f"crc32c=AAAA,md5={b64(MD5)},sha1=whatever,md5=%%%")
    with caplog.at_level(logging.WARNING, logger=checksum_headers.__name__):
        assert from_headers(h, full_body=True) == [Expected("md5", MD5, "x-goog-hash")]
    assert len([r for r in caplog.records if "x-goog-hash" in r.getMessage()]) == 2


def test_x_goog_hash_ignored_when_gcs_decompresses() -> None:
    h = headers(x_goog_hash=f"md5={b64(MD5)}", x_goog_stored_content_encoding="gzip")
    assert from_headers(h, full_body=True) == []
    h["Content-Encoding"] = "gzip"  # served as stored: the hash applies
    assert from_headers(h, full_body=True) == [Expected("md5", MD5, "x-goog-hash")]


@pytest.mark.parametrize(
    "s3_marker",
    [{"x-amz-request-id": "R"}, {"x-amz-id-2": "abc"}, {"Server": "AmazonS3"}, {"x-amz-version-id": "v"}],
)
def test_s3_etag_recognised(s3_marker: dict[str, str]) -> None:
    h = CaseInsensitiveDict({"ETag": f'"{MD5}"', **s3_marker})
    assert from_headers(h, full_body=True) == [Expected("s3etag", MD5, "ETag")]
    # An ETag names the whole object, so a range response carries it too.
    assert from_headers(h, full_body=False) == [Expected("s3etag", MD5, "ETag")]


def test_s3_etag_multipart_and_case() -> None:
    h = headers(ETag=f'"{MD5.upper()}-13"', x_amz_request_id="R")
    assert from_headers(h, full_body=True) == [Expected("s3etag", f"{MD5}-13", "ETag")]


@pytest.mark.parametrize(
    "extra",
    [
        {},  # not recognisably S3
        {"Server": "nginx"},
        {"x-amzn-requestid": "R"},  # other AWS services (API Gateway, Lambda), not S3
        {"x-amz-cf-id": "C", "Via": "1.1 cloudfront"},  # CloudFront fronts any origin
        {"x-amz-request-id": "R", "x-amz-server-side-encryption": "aws:kms"},
        {"x-amz-request-id": "R", "x-amz-server-side-encryption": "aws:kms:dsse"},
        {"x-amz-request-id": "R", "x-amz-server-side-encryption-customer-algorithm": "AES256"},
        {"x-amz-request-id": "R", "x-goog-generation": "1"},
    ],
)
def test_s3_etag_not_used(extra: dict[str, str]) -> None:
    h = CaseInsensitiveDict({"ETag": f'"{MD5}"', **extra})
    assert from_headers(h, full_body=True) == []


def test_s3_etag_sse_s3_is_md5() -> None:
    h = headers(ETag=f'"{MD5}"', x_amz_request_id="R", x_amz_server_side_encryption="AES256")
    assert from_headers(h, full_body=True) == [Expected("s3etag", MD5, "ETag")]


def test_s3_etag_weak() -> None:
    h = headers(ETag=f'W/"{MD5}-2"', x_amz_request_id="R")
    assert from_headers(h, full_body=True) == [Expected("s3etag", f"{MD5}-2", "ETag")]
    # Weakened by a proxy that compressed the body: these are not S3's bytes.
    h["Content-Encoding"] = "gzip"
    assert from_headers(h, full_body=True) == []


@pytest.mark.parametrize(
    "etag", ['"abc"', f'"{SHA256}"', f'"{MD5}-0"', f'"{MD5}-10001"', f'"{MD5}-x"', f'"{MD5}', "*"]
)
def test_s3_etag_other_shapes_ignored(etag: str) -> None:
    assert from_headers(headers(ETag=etag, x_amz_request_id="R"), full_body=True) == []


def test_repr_digest_any_response() -> None:
    h = headers(Repr_Digest=f"sha-256=:{b64(SHA256)}:, sha-512=:{b64(SHA512)}:;x=1, unixsum=:AAAA:")
    want = [Expected("sha256", SHA256, "Repr-Digest"), Expected("sha512", SHA512, "Repr-Digest")]
    assert from_headers(h, full_body=True) == want
    assert from_headers(h, full_body=False) == want


def test_repr_digest_other_algorithms() -> None:
    h = headers(Repr_Digest=f"md5=:{b64(MD5)}:,sha=:{b64(SHA1)}:,crc32c=:{b64(CRC)}:")
    assert from_headers(h, full_body=False) == [
        Expected("md5", MD5, "Repr-Digest"),
        Expected("sha1", SHA1, "Repr-Digest"),
        Expected("crc32c", CRC, "Repr-Digest"),
    ]


def test_content_digest_full_body_only() -> None:
    h = headers(Content_Digest=f"sha-256=:{b64(SHA256)}:")
    assert from_headers(h, full_body=True) == [Expected("sha256", SHA256, "Content-Digest")]
    assert from_headers(h, full_body=False) == []


def test_structured_digest_malformed(caplog: pytest.LogCaptureFixture) -> None:
    h = headers(Repr_Digest=f"sha-256={b64(SHA256)}, sha-512=:{b64(SHA256)}:, md5=:!!:, sha-256")
    with caplog.at_level(logging.WARNING, logger=checksum_headers.__name__):
        assert from_headers(h, full_body=True) == []
    assert len(caplog.records) == 4


def test_legacy_digest() -> None:
    h = headers(
        Digest=f"SHA-256={b64(SHA256)}, MD5={b64(MD5)},SHA={b64(SHA1)}, CRC32C={b64(CRC)}, UNIXsum=30"
    )
    assert from_headers(h, full_body=False) == [
        Expected("sha256", SHA256, "Digest"),
        Expected("md5", MD5, "Digest"),
        Expected("sha1", SHA1, "Digest"),
        Expected("crc32c", CRC, "Digest"),
    ]


def test_legacy_digest_malformed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=checksum_headers.__name__):
        assert from_headers(headers(Digest="SHA-256=abc, md5"), full_body=True) == []
    assert len(caplog.records) == 2


def test_dedup_keeps_first_source() -> None:
    h = headers(
        Content_MD5=b64(MD5),
        x_goog_hash=f"md5={b64(MD5)}",
        Repr_Digest=f"md5=:{b64(MD5)}:, sha-256=:{b64(SHA256)}:",
        Digest=f"sha-256={b64(SHA256)}",
    )
    assert from_headers(h, full_body=True) == [
        Expected("md5", MD5, "Content-MD5"),
        Expected("sha256", SHA256, "Repr-Digest"),
    ]


def test_no_checksum_headers() -> None:
    assert from_headers(headers(ETag='"abc"', Content_Length="12"), full_body=True) == []


# --- crc32c_combine -----------------------------------------------------------------------------------


def test_crc32c_combine_random_splits() -> None:
    rng = random.Random(7)
    data = rng.randbytes(3 * MiB + 17)
    whole = crc32c.crc32c(data)
    cuts = [0, 1, len(data) - 1, len(data)] + [rng.randrange(len(data) + 1) for _ in range(40)]
    for cut in cuts:
        a, b = data[:cut], data[cut:]
        assert crc32c_combine(crc32c.crc32c(a), crc32c.crc32c(b), len(b)) == whole, cut


def test_crc32c_combine_len2_zero() -> None:
    crc = crc32c.crc32c(b"abc")
    assert crc32c_combine(crc, crc32c.crc32c(b""), 0) == crc


def test_crc32c_combine_many_parts_out_of_order() -> None:
    """How the engine uses it: parts hashed independently, joined in file order at the end."""
    rng = random.Random(3)
    data = rng.randbytes(5 * MiB)
    bounds = sorted({0, len(data), *(rng.randrange(len(data)) for _ in range(30))})
    parts = [(s, e, crc32c.crc32c(data[s:e])) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]
    rng.shuffle(parts)  # arrival order does not matter, only the final fold
    total = 0
    for start, end, crc in sorted(parts):
        total = crc32c_combine(total, crc, end - start)
    assert total == crc32c.crc32c(data)


def test_crc32c_combine_large_len2() -> None:
    # Long runs of zeros checked against the real thing, doubling up to 32 MiB.
    crc = crc32c.crc32c(b"\0")
    for k in range(1, 26):
        n = 1 << (k - 1)
        crc = crc32c_combine(crc, crc, n)
        if k in (10, 20, 25):
            assert crc == crc32c.crc32c(bytes(1 << k))
    # Lengths beyond memory: combining must be associative, (A+B)+C == A+(B+C).
    a, b, c = (crc32c.crc32c(bytes([i]) * 100) for i in (1, 2, 3))
    lb, lc = (1 << 40) + 12345, (1 << 37) + 3
    assert crc32c_combine(crc32c_combine(a, b, lb), c, lc) == crc32c_combine(
        a, crc32c_combine(b, c, lc), lb + lc
    )


@pytest.mark.slow
def test_crc32c_combine_fast() -> None:
    rng = random.Random(1)
    args = [(rng.getrandbits(32), rng.getrandbits(32), rng.randrange(1 << 34)) for _ in range(5000)]
    start = time.perf_counter()
    for a in args:
        crc32c_combine(*a)
    assert time.perf_counter() - start < 2.0


def test_crc32c_combine_negative() -> None:
    with pytest.raises(ValueError):
        crc32c_combine(0, 0, -1)


# --- Verifier -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_verifier_each_algorithm(algo: str) -> None:
    data = random.Random(algo).randbytes(100_000)
    good = Expected(algo, hexdigest(algo, data), "user")
    bad = Expected(algo, hexdigest(algo, data + b"x"), "user")
    v = Verifier([good, bad], size=len(data))
    assert v.ordered is (algo != "crc32c")
    for chunk in (data[:1], data[1:4096], data[4096:]):
        v.update(chunk)
    outcomes = v.finish()
    assert [o.ok for o in outcomes] == [True, False]
    assert outcomes[0].computed == outcomes[1].computed == good.value
    assert verdict(outcomes[:1]) == "verified"
    assert verdict(outcomes) == "mismatch"


def test_verifier_crc32c_from_caller_out_of_order() -> None:
    data = random.Random(5).randbytes(10_000)
    v = Verifier([Expected("crc32c", hexdigest("crc32c", data), "x-goog-hash")], size=len(data))
    assert v.ordered is False
    second, first = crc32c.crc32c(data[6000:]), crc32c.crc32c(data[:6000])
    assert verdict(v.finish(crc32c_combine(first, second, 4000))) == "verified"
    assert verdict(v.finish(crc32c_combine(second, first, 6000))) == "mismatch"


def test_verifier_crc32c_needs_a_value() -> None:
    v = Verifier([Expected("crc32c", "00000000", "user")], size=10)
    with pytest.raises(ValueError):
        v.finish()
    # An empty file needs no bytes: its crc32c is 0.
    assert verdict(Verifier([Expected("crc32c", "00000000", "user")], size=0).finish()) == "verified"


def test_verifier_accepts_memoryview_of_other_formats() -> None:
    data = bytes(range(256)) * 64
    v = Verifier([Expected("sha256", hexdigest("sha256", data), "user")], size=len(data))
    v.update(memoryview(bytearray(data)).cast("I"))
    assert verdict(v.finish()) == "verified"


def test_verifier_short_feed_is_explained() -> None:
    v = Verifier([Expected("md5", MD5, "user")], size=len(HELLO))
    v.update(HELLO[:5])
    (outcome,) = v.finish()
    assert not outcome.ok
    assert outcome.detail == f"hashed 5 of {len(HELLO)} bytes"


def test_verifier_reset_and_finish_repeatable() -> None:
    expected = [Expected("sha1", SHA1, "user"), Expected("crc32c", CRC, "user")]
    v = Verifier(expected, size=len(HELLO))
    v.update(b"stale data from before the remote changed")
    assert verdict(v.finish()) == "mismatch"
    v.reset()
    assert v.fed == 0
    v.update(HELLO)
    assert verdict(v.finish()) == "verified"
    assert v.finish() == v.finish()  # finishing does not disturb the running state


def test_verifier_unknown_algorithm() -> None:
    with pytest.raises(ValueError):
        Verifier([Expected("blake2b", "00", "user")], size=None)


def test_verifier_shares_one_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real = checksum._new_hash

    def counting(name: str) -> object:
        made.append(name)
        return real(name)

    monkeypatch.setattr(checksum, "_new_hash", counting)
    expected = [
        Expected("md5", MD5, "user"),
        Expected("md5", MD5, "Content-MD5"),
        Expected("s3etag", MD5, "ETag"),
        Expected("sha256", SHA256, "Repr-Digest"),
    ]
    v = Verifier(expected, size=len(HELLO))
    v.update(HELLO)
    outcomes = v.finish()
    assert sorted(made) == ["md5", "sha256"]
    assert verdict(outcomes) == "verified"
    assert outcomes[2].detail == "S3 single-part ETag (MD5 of the object)"


def test_s3_single_part_etag(body: bytes) -> None:
    good = Expected("s3etag", hashlib.md5(body).hexdigest(), "ETag")
    v = Verifier([good], size=len(body))
    for chunk in irregular_chunks(body):
        v.update(chunk)
    assert verdict(v.finish()) == "verified"


def test_s3_one_part_multipart_etag() -> None:
    etag = s3_multipart_etag(HELLO, 8 * MiB)
    assert etag.endswith("-1")
    v = Verifier([Expected("s3etag", etag, "ETag")], size=len(HELLO))
    v.update(HELLO)
    assert verdict(v.finish()) == "verified"


def test_s3_multipart_8mib(body: bytes) -> None:
    etag = s3_multipart_etag(body, 8 * MiB)
    assert etag.endswith("-3")
    v = Verifier([Expected("s3etag", etag, "ETag")], size=len(body))
    assert v.ordered
    for chunk in irregular_chunks(body):
        v.update(chunk)
    (outcome,) = v.finish()
    assert outcome.ok, outcome
    assert outcome.computed == etag
    assert outcome.detail == "S3 multipart layout 8 MiB x 3 parts"


def test_s3_multipart_5mib() -> None:
    data = random.Random(9).randbytes(12 * MiB + 5)
    etag = s3_multipart_etag(data, 5 * MiB)
    v = Verifier([Expected("s3etag", etag, "ETag")], size=len(data))
    for chunk in irregular_chunks(data):
        v.update(chunk)
    (outcome,) = v.finish()
    assert outcome.ok and outcome.detail == "S3 multipart layout 5 MiB x 3 parts"


def test_s3_multipart_uncommon_whole_mib(body: bytes) -> None:
    etag = s3_multipart_etag(body, 7 * MiB)  # found as the smallest feasible whole number of MiB
    v = Verifier([Expected("s3etag", etag, "ETag")], size=len(body))
    v.update(body)
    (outcome,) = v.finish()
    assert outcome.ok and outcome.detail == "S3 multipart layout 7 MiB x 3 parts"


def test_s3_multipart_no_layout_matches(body: bytes) -> None:
    etag = s3_multipart_etag(body, 7 * MiB + 12345)  # a layout nobody guesses
    v = Verifier([Expected("s3etag", etag, "ETag")], size=len(body))
    v.update(body)
    (outcome,) = v.finish()
    assert not outcome.ok
    assert outcome.detail == f"no S3 part layout matched (tried 8 MiB, 7 MiB, {-(-len(body) // 3)} bytes)"
    assert outcome.computed == s3_multipart_etag(body, 8 * MiB)  # the most likely layout
    assert verdict([outcome]) == "mismatch"


def test_s3_multipart_corrupted(body: bytes) -> None:
    etag = s3_multipart_etag(body, 8 * MiB)
    bad = bytearray(body)
    bad[9 * MiB] ^= 1
    v = Verifier([Expected("s3etag", etag, "ETag")], size=len(body))
    v.update(bad)
    assert verdict(v.finish()) == "mismatch"


def test_s3_multipart_unknown_size(body: bytes) -> None:
    etag = s3_multipart_etag(body, 5 * MiB)
    v = Verifier([Expected("s3etag", etag, "ETag")], size=None)
    for chunk in irregular_chunks(body):
        v.update(chunk)
    (outcome,) = v.finish()
    assert outcome.ok and outcome.detail == "S3 multipart layout 5 MiB x 5 parts"


def test_s3_impossible_layout_dropped() -> None:
    v = Verifier([Expected("s3etag", f"{MD5}-20", "ETag"), Expected("md5", MD5, "user")], size=len(HELLO))
    assert [e.algorithm for e in v.expected] == ["md5"]
    v.update(HELLO)
    assert verdict(v.finish()) == "verified"
    assert verdict(Verifier([Expected("s3etag", f"{MD5}-20", "ETag")], size=10).finish()) == "unverified"


def test_s3_part_size_candidates() -> None:
    size = 20 * MiB + 3
    assert s3_part_size_candidates(size, 3) == [8 * MiB, 7 * MiB, -(-size // 3)]
    assert s3_part_size_candidates(size, 1) == [size]
    assert s3_part_size_candidates(10, 20) == []
    assert s3_part_size_candidates(None, 4) == list(checksum.COMMON_PART_SIZES[: checksum.MAX_LAYOUTS])
    # Two parts of a big file: many common sizes fit, capped so each costs at most 6 md5 passes.
    many = s3_part_size_candidates(2000 * MiB, 2)
    assert len(many) <= checksum.MAX_LAYOUTS
    assert many[0] == 1024 * MiB
    for p in s3_part_size_candidates(1_000_000_007, 77):
        assert -(-1_000_000_007 // p) == 77


def test_verdict() -> None:
    e = Expected("md5", MD5, "user")
    assert verdict([]) == "unverified"
    assert verdict([Outcome(e, MD5, True), Outcome(e, MD5, True)]) == "verified"
    assert verdict([Outcome(e, MD5, True), Outcome(e, "0" * 32, False)]) == "mismatch"


def test_the_engines_crc32c_is_the_packages_function_without_its_metadata_import() -> None:
    """getm_tui.engine.crc loads crc32c's extension alone: the package's __init__ imports importlib.metadata
    (20-25 ms of every start). Fresh interpreters, since pytest has imported everything already."""
    import json
    import subprocess
    import sys

    script = (
        "import json, sys; from getm_tui.engine.crc import crc32c as f; "
        "first = 'importlib.metadata' in sys.modules; import crc32c; "
        "print(json.dumps([first, f(b'123456789'), f(b'6789', f(b'12345')), crc32c.crc32c(b'123456789'), "
        "f is crc32c.crc32c]))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    metadata_loaded, whole, chained, packages, same = json.loads(out.stdout)
    assert metadata_loaded is False
    assert whole == chained == packages == 0xE3069283  # the CRC-32C check value
    assert same is True  # one extension module, shared with a later `import crc32c`
