"""S3 ETags as checksums, end to end against moto: upload, GET a presigned URL, verify the body.

What moto 5.2 sends on a GET of a presigned URL (recorded here because the downloader relies on it):
`ETag` ("md5hex" for a single PUT, "md5hex-N" for multipart), `x-amz-content-sha256`, `x-amzn-requestid`
(not the real S3's `x-amz-request-id`/`x-amz-id-2`), `Server: Werkzeug/...` (not `AmazonS3`),
`Accept-Ranges: bytes`, `Last-Modified`, `Content-Length`, and `Content-Range` on 206 answers. So
from_headers recognises moto as S3 through `x-amz-content-sha256`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import requests

from getm_tui.engine.checksum import MiB, Verifier, verdict
from getm_tui.engine.checksum_headers import from_headers
from tests.helpers.s3server import S3Server

BIG = random.Random(42).randbytes(12 * MiB + 12_345)  # three parts of 5 MiB, the last one short
SMALL = random.Random(43).randbytes(70_000)
PART = 5 * MiB
TIMEOUT = 30


@pytest.fixture(scope="module")
def urls(s3_server: S3Server) -> dict[str, str]:
    return {
        "multipart": s3_server.put_multipart("data/big.bin", BIG, PART),
        "single": s3_server.put_object("data/small.bin", SMALL),
    }


def _full_body(resp: requests.Response) -> bool:
    """Whether the body is the whole object: a 200, or a 206 whose range is 0..size-1."""
    if resp.status_code == 200:
        return True
    first_last, _, total = resp.headers["Content-Range"].removeprefix("bytes ").partition("/")
    first, _, last = first_last.partition("-")
    return int(first) == 0 and int(last) == int(total) - 1


def _chunks(resp: requests.Response) -> Iterator[bytes]:
    yield from resp.iter_content(chunk_size=1 * MiB + 17)


@pytest.mark.parametrize("kind", ["multipart", "single"])
@pytest.mark.parametrize("range_header", [None, "bytes=0-"])
def test_presigned_get_verifies(
    urls: dict[str, str], kind: str, range_header: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    body = BIG if kind == "multipart" else SMALL
    headers = {"Range": range_header} if range_header else {}
    with requests.get(urls[kind], headers=headers, stream=True, timeout=TIMEOUT) as resp:
        assert resp.status_code == (206 if range_header else 200)
        assert _full_body(resp)
        expected = from_headers(resp.headers, full_body=True)
        etags = [e for e in expected if e.algorithm == "s3etag"]
        assert len(etags) == 1 and etags[0].source == "ETag"
        assert etags[0].value.endswith("-3") == (kind == "multipart")
        v = Verifier(expected, size=int(resp.headers["Content-Length"]))
        for chunk in _chunks(resp):
            v.update(chunk)
    outcomes = v.finish()
    assert verdict(outcomes) == "verified", outcomes
    assert v.fed == len(body)
    if kind == "multipart":
        assert outcomes[0].detail == "S3 multipart layout 5 MiB x 3 parts"
    assert capsys.readouterr() == ("", "")  # nothing printed along the way


@pytest.mark.parametrize("kind", ["multipart", "single"])
def test_corrupted_body_mismatches(urls: dict[str, str], kind: str) -> None:
    resp = requests.get(urls[kind], timeout=TIMEOUT)
    resp.raise_for_status()
    body = bytearray(resp.content)
    body[len(body) // 2] ^= 0x01
    v = Verifier(from_headers(resp.headers, full_body=True), size=len(body))
    v.update(body)
    outcomes = v.finish()
    assert verdict(outcomes) == "mismatch"
    if kind == "multipart":
        assert outcomes[0].detail.startswith("no S3 part layout matched (tried 5 MiB")


def test_small_range_probe_still_yields_etag(urls: dict[str, str]) -> None:
    """A `Range: bytes=0-0` GET is the portable probe: it carries the ETag and the total size."""
    resp = requests.get(urls["multipart"], headers={"Range": "bytes=0-0"}, timeout=TIMEOUT)
    assert resp.status_code == 206
    assert resp.headers["Content-Range"] == f"bytes 0-0/{len(BIG)}"
    assert not _full_body(resp)
    assert [e.algorithm for e in from_headers(resp.headers, full_body=False)] == ["s3etag"]


def test_moto_response_headers(urls: dict[str, str]) -> None:
    """Pin down the S3 markers moto sends, which the recognition in from_headers depends on."""
    resp = requests.get(urls["single"], headers={"Range": "bytes=0-"}, timeout=TIMEOUT)
    names = {k.lower() for k in resp.headers}
    assert any(n.startswith("x-amz-") for n in names)
    assert resp.headers["ETag"].startswith('"') and resp.headers["Accept-Ranges"] == "bytes"


def test_head_on_presigned_get_url(urls: dict[str, str], s3_server: S3Server) -> None:
    # moto answers a HEAD on a URL presigned for GET with 200 and the same headers as the GET (ETag,
    # Content-Length) -- but only because moto does not check presigned signatures at all: a URL with a
    # tampered X-Amz-Signature is served too (asserted below). Real S3 includes the HTTP method in the
    # SigV4 string to sign, so a HEAD on a GET-signed URL gets 403 SignatureDoesNotMatch (GCS signed URLs
    # likewise). A downloader must therefore probe signed URLs with a ranged GET, never HEAD; moto
    # cannot be used to test that refusal.
    head = requests.head(urls["multipart"], timeout=TIMEOUT)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(BIG))
    assert head.headers["ETag"].endswith('-3"')
    tampered = urls["single"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert requests.get(tampered, timeout=TIMEOUT).status_code == 200
