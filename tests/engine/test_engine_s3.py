"""The engine against moto's S3 through presigned URLs: a multipart ETag verifies a parallel download."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from getm_tui.engine import IntegrityError, Options, download, urlopen
from tests.helpers.engine_util import no_leftovers
from tests.helpers.s3server import S3Server

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
BIG = random.Random(41).randbytes(12 * MiB + 4567)  # uploaded in 5 MiB parts: ETag "md5-3"
SINGLE = random.Random(42).randbytes(3 * MiB + 1)  # one PUT: ETag is the md5
OPTS = Options(part_size=MiB, retries=3, retry_base=0.01)


@pytest.fixture(autouse=True)
def _engine_hygiene() -> Iterator[None]:
    with no_leftovers():
        yield


@pytest.fixture(scope="module")
def urls(s3_server: S3Server) -> dict[str, str]:
    return {
        "multipart": s3_server.put_multipart("data/big.bin", BIG, 5 * MiB),
        "single": s3_server.put_object("data/single.bin", SINGLE),
    }


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 4])
def test_multipart_etag_verified(urls, tmp_path, concurrency) -> None:
    result = download(urls["multipart"], str(tmp_path), concurrency=concurrency, options=OPTS)
    assert result.verdict == "verified"
    [outcome] = result.outcomes
    assert outcome.expected.algorithm == "s3etag"
    assert outcome.expected.value.endswith("-3")
    assert "5 MiB x 3 parts" in outcome.detail
    assert result.path == str(tmp_path / "big.bin")  # the name from the URL's path, not its query
    assert os.listdir(tmp_path) == ["big.bin"]
    with open(result.path, "rb") as f:
        assert f.read() == BIG


def test_single_part_etag_verified(urls, tmp_path) -> None:
    result = download(urls["single"], str(tmp_path), concurrency=4, options=OPTS)
    assert result.verdict == "verified"
    assert [o.expected.algorithm for o in result.outcomes] == ["s3etag"]
    with open(result.path, "rb") as f:
        assert f.read() == SINGLE


@pytest.mark.slow
def test_user_checksum_and_etag_both_checked(urls, tmp_path) -> None:
    import hashlib

    wrong = "sha256:" + hashlib.sha256(b"not the data").hexdigest()
    with pytest.raises(IntegrityError) as info:
        download(urls["multipart"], str(tmp_path), concurrency=4, checksum=wrong, options=OPTS)
    assert hashlib.sha256(BIG).hexdigest() in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_urlopen_multipart(urls) -> None:
    with urlopen(urls["multipart"], concurrency=4, options=OPTS) as reader:
        got = b"".join(bytes(v) for v in reader)
        assert [o.ok for o in reader.outcomes] == [True]
    assert got == BIG
