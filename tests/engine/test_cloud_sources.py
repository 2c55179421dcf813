"""s3:// and gs:// downloads against real servers: moto's S3, gcp-storage-emulator, and the fault server
standing in for an S3 endpoint where what arrives on the wire must be looked at (signatures, corruption).

moto and the emulator check no signature: that every request is signed when it is sent, and signed right,
is shown on the fault server by recomputing each request's SigV4 signature from what it received.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import pickle
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from getm_tui.engine import IntegrityError, Options, UsageError, download, urlopen
from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.http import Probe
from tests.helpers.faultserver import FaultServer
from tests.helpers.gcsserver import GCSServer
from tests.helpers.s3server import S3Server

MiB = 1024 * 1024
SECRET = "never-shown-secret-key"
TOKEN = "never-shown-session-token"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, "
    r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})"
)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _probed(url: str, directory: str, **kw: object) -> tuple[object, list[Probe]]:
    seen: list[Probe] = []
    result = download(url, directory, on_probe=lambda p, _t: seen.append(p), **kw)  # type: ignore[arg-type]
    return result, seen


@pytest.mark.slow
def test_s3_object_verified_by_etag_and_additional_checksum(s3_server: S3Server, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 17)
    s3_server.client.put_object(
        Bucket=s3_server.bucket, Key="dir/one.bin", Body=data, ChecksumAlgorithm="SHA256"
    )
    for concurrency in (4, None):
        out = os.path.join(str(tmp_path), f"c{concurrency}")
        os.mkdir(out)
        result = download(f"s3://{s3_server.bucket}/dir/one.bin", out, concurrency=concurrency)
        assert os.path.basename(result.path) == "one.bin"
        assert Path(result.path).read_bytes() == data
        assert result.verdict == "verified"
        sources = {o.expected.source for o in result.outcomes}
        assert sources == {"ETag", "x-amz-checksum-sha256"}


@pytest.mark.slow
def test_s3_multipart_layout_is_found_not_guessed(s3_server: S3Server, tmp_path: Path) -> None:
    # A part size no guess would try: only the HEAD of part 1 tells it.
    part = 5 * MiB + 12345
    data = os.urandom(2 * part + 1000)
    s3_server.put_multipart("multi.bin", data, part)
    result, probes = _probed(f"s3://{s3_server.bucket}/multi.bin", str(tmp_path), concurrency=4)
    etags = [e for e in probes[0].expected if e.algorithm == "s3etag"]
    assert [(e.value.endswith("-3"), e.part_size) for e in etags] == [(True, part)]
    assert result.verdict == "verified"  # type: ignore[attr-defined]
    assert Path(result.path).read_bytes() == data  # type: ignore[attr-defined]


def test_s3_urlopen_reads_an_object(s3_server: S3Server) -> None:
    data = b"small object " * 1000
    s3_server.put_object("small.txt", data)
    with urlopen(f"s3://{s3_server.bucket}/small.txt", concurrency=None) as reader:
        assert b"".join(bytes(v) for v in reader) == data
        assert reader.outcomes and all(o.ok for o in reader.outcomes)


def test_s3_missing_object_and_prefix_name_the_url(s3_server: S3Server, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=rf"404 Not Found from s3://{s3_server.bucket}/nope"):
        download(f"s3://{s3_server.bucket}/nope", str(tmp_path), options=Options(retries=0))
    with pytest.raises(UsageError, match="names a prefix"):
        download(f"s3://{s3_server.bucket}/dir/", str(tmp_path))


@pytest.fixture
def signed_endpoint(fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> tuple[FaultServer, str]:
    """The fault server as an S3 endpoint (path style), with credentials whose secrets must stay hidden."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_server.base_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDGETMTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return fault_server, f"getm-{uuid.uuid4().hex[:10]}"


def _signature_ok(method: str, url: str, headers: dict[str, str]) -> bool:
    """Recompute the request's SigV4 signature from what the server received, as S3 does."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    m = _AUTH.fullmatch(headers["Authorization"])
    assert m is not None, headers["Authorization"]
    lower = {k.lower(): v for k, v in headers.items()}
    signed = m.group(4).split(";")
    request = AWSRequest(method=method, url=url, headers={h: lower[h] for h in signed if h != "host"})
    request.context["timestamp"] = lower["x-amz-date"]
    auth = S3SigV4Auth(Credentials("AKIDGETMTEST", SECRET, TOKEN), "s3", m.group(3))
    canonical = auth.canonical_request(request)
    return bool(auth.signature(auth.string_to_sign(request, canonical), request) == m.group(5))


@pytest.mark.slow
def test_every_request_is_signed_when_sent_and_no_secret_is_shown(
    signed_endpoint: tuple[FaultServer, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, bucket = signed_endpoint
    data = os.urandom(6 * MiB)
    server.add(
        f"/{bucket}/k/data.bin", data, headers={"x-amz-checksum-sha256": _b64(hashlib.sha256(data).digest())}
    )
    caplog.set_level(logging.DEBUG)
    opts = Options(part_size=MiB)
    result, probes = _probed(f"s3://{bucket}/k/data.bin", str(tmp_path), concurrency=4, options=opts)
    assert result.verdict == "verified"  # type: ignore[attr-defined]
    records = server.resource(f"/{bucket}/k/data.bin").requests
    assert len(records) >= 6  # the probe and the parts, from several worker processes
    for r in records:
        assert r.request_headers["X-Amz-Security-Token"] == TOKEN
        assert _signature_ok(r.method, server.url(f"/{bucket}/k/data.bin"), r.request_headers)
    # What a worker is handed carries the credentials in memory (a pickle over its pipe), shown nowhere.
    signer = probes[0].signer
    assert SECRET not in repr(probes[0]) and TOKEN not in repr(probes[0])
    assert SECRET.encode() in pickle.dumps(signer)
    assert SECRET not in caplog.text and TOKEN not in caplog.text


def test_anonymous_requests_carry_no_credentials(
    signed_endpoint: tuple[FaultServer, str], tmp_path: Path
) -> None:
    server, bucket = signed_endpoint
    server.add(f"/{bucket}/public.txt", b"public data")
    result = download(
        f"s3://{bucket}/public.txt", str(tmp_path), options=Options(access=Access(anonymous=True))
    )
    assert Path(result.path).read_bytes() == b"public data"
    assert all(
        "Authorization" not in r.request_headers for r in server.resource(f"/{bucket}/public.txt").requests
    )


def test_bucket_checksum_catches_corruption(signed_endpoint: tuple[FaultServer, str], tmp_path: Path) -> None:
    server, bucket = signed_endpoint
    data = os.urandom(300_000)
    crc = __import__("crc32c").crc32c(data).to_bytes(4, "big")
    server.add(f"/{bucket}/bad.bin", data, corrupt_offset=1234, headers={"x-amz-checksum-crc32c": _b64(crc)})
    with pytest.raises(IntegrityError, match="x-amz-checksum-crc32c"):
        download(f"s3://{bucket}/bad.bin", str(tmp_path))
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.slow
def test_gcs_object_verified_by_metadata_checksums(gcs_server: GCSServer, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 5)
    url = gcs_server.put_object("folder/obj.bin", data)
    for concurrency in (4, None):
        out = os.path.join(str(tmp_path), f"c{concurrency}")
        os.mkdir(out)
        result = download(url, out, concurrency=concurrency)
        assert os.path.basename(result.path) == "obj.bin"
        assert Path(result.path).read_bytes() == data
        assert result.verdict == "verified"
        assert {o.expected.source for o in result.outcomes} >= {"GCS crc32c", "GCS md5Hash"}


def test_gcs_missing_object(gcs_server: GCSServer, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=rf"404 Not Found from gs://{gcs_server.bucket}/absent"):
        download(f"gs://{gcs_server.bucket}/absent", str(tmp_path), options=Options(retries=0))


def test_an_http_download_loads_no_cloud_library(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/plain.bin", os.urandom(100_000))
    code = (
        "import sys\n"
        "from getm_tui.engine import download\n"
        f"download({url!r}, {str(tmp_path)!r}, concurrency=2)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('botocore', 'google', 'boto3')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("url", ["s3://", "gs:///key", "s3://b?x/k", "s3://user@b/k", "s3://b/a\x07b"])
def test_malformed_bucket_urls(url: str) -> None:
    from getm_tui.engine.urls import validate

    with pytest.raises(UsageError, match="malformed URL"):
        validate(url)


@pytest.mark.parametrize("url", ["s3://b/a b.txt", "gs://b/what? #1", "s3://b/k?x=1"])
def test_a_bucket_key_is_taken_as_written(url: str) -> None:
    """Keys may hold blanks, `?` and `#` (listings hand them out); the clouds' tools take them literally."""
    from getm_tui.engine.urls import validate

    assert validate(url) == url
