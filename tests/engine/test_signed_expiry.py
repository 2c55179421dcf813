"""Signed URLs that expire half-way: the download stops with a line that says so and keeps its parts, and
the same object under a new URL resumes from them (against the loopback fault server, which refuses a
URL's later requests the way S3 refuses a presigned URL past its deadline)."""

from __future__ import annotations

import json
import random

import pytest

from getm_tui.engine import DownloadError, Options, download
from getm_tui.engine.expiry import expires_at, format_deadline, refusal_is_expiry, will_outlast
from tests.helpers.engine_util import read
from tests.helpers.faultserver import FaultServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("engine_hygiene")]

MiB = 1024 * 1024
DATA = random.Random(31).randbytes(6 * MiB + 123)
OPTS = Options(part_size=MiB, retries=2, retry_base=0.01)
SIGNED = "?X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-Signature=OLDSECRET"
RESIGNED = "?X-Amz-Date=20260101T010000Z&X-Amz-Expires=3600&X-Amz-Signature=NEWSECRET"
GCS_BODY = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
    "<Message>Invalid argument.</Message></Error>"
)
START_2026 = 1767225600.0  # 2026-01-01T00:00:00Z


def test_expiry_from_each_kind_of_signed_url():
    assert expires_at("https://b.s3.amazonaws.com/k" + SIGNED) == START_2026 + 3600
    goog = "https://storage.googleapis.com/b/o?X-Goog-Algorithm=A&X-Goog-Date=20260101T000000Z&X-Goog-Expires=900"
    assert expires_at(goog) == START_2026 + 900
    assert expires_at("https://cdn.example.org/o?Expires=1767229200&Signature=x") == 1767229200.0
    assert expires_at("https://example.org/plain.bin") is None
    assert expires_at("https://example.org/o?X-Amz-Date=garbage&X-Amz-Expires=60") is None
    assert format_deadline(START_2026 + 3600) == "2026-01-01 01:00:00 UTC"


def test_which_refusals_mean_the_signature_expired():
    s3 = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    url = "https://b.s3.amazonaws.com/k" + SIGNED
    assert refusal_is_expiry(403, s3, url, now=START_2026)
    assert refusal_is_expiry(400, GCS_BODY.encode(), "https://storage.googleapis.com/b/o")
    # A bare 403 means expiry only after the deadline the URL states.
    assert not refusal_is_expiry(403, b"<Code>AccessDenied</Code>", url, now=START_2026 + 10)
    assert refusal_is_expiry(403, b"", url, now=START_2026 + 3600)
    assert not refusal_is_expiry(403, b"", "https://example.org/plain.bin")
    assert not refusal_is_expiry(404, s3, url, now=START_2026)


def test_whether_a_download_outlasts_its_url():
    assert will_outlast(START_2026 + 60, 100 * MiB, MiB, now=START_2026)
    assert not will_outlast(START_2026 + 600, 100 * MiB, MiB, now=START_2026)
    assert not will_outlast(None, 100 * MiB, MiB) and not will_outlast(START_2026, None, MiB)
    assert not will_outlast(START_2026, 100, 0.0)


# One stream: the probe's body is cut after 2 MiB and the GET that would go on is refused. Several
# connections: the probe and two parts are answered, the rest refused.
@pytest.mark.parametrize(
    ("concurrency", "faults"),
    [
        (None, {"deny_after_requests": 1, "drop_after": 2 * MiB + 5, "drop_times": 1}),
        (3, {"deny_after_requests": 3}),
    ],
    ids=["one-stream", "parallel"],
)
@pytest.mark.slow
def test_an_expired_url_keeps_its_parts_and_a_new_one_resumes(
    fault_server: FaultServer, tmp_path, concurrency, faults
):
    url = fault_server.add("/big.bin", DATA, **faults)
    res = fault_server.resource(url)
    with pytest.raises(DownloadError) as failed:
        download(url + SIGNED, str(tmp_path), concurrency=concurrency, options=OPTS)
    message = str(failed.value)
    assert message.startswith("signed URL expired (at 2026-01-01 01:00:00 UTC): HTTP 403 from ")
    assert message.endswith("; the parts fetched are kept for a new URL of it")
    assert "SECRET" not in message and "X-Amz" not in message
    # Refused for good, not retried: the request after the third was the last.
    assert [r.faults for r in res.requests].count(["denied"]) <= (concurrency or 1)
    record = json.loads((tmp_path / "big.bin.getm-resume").read_text())
    kept = sum(done for _start, _end, done, _crc in record["parts"])
    assert kept >= MiB
    asked_before = len(res.requests)
    res.configure(deny_after_requests=None)
    result = download(url + RESIGNED, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert read(result.path) == DATA
    # After the probe, only what was not kept is asked for.
    probe, *rest = res.requests[asked_before:]
    assert probe.range == "bytes=0-" and rest
    assert sum(r.body_length for r in rest) <= len(DATA) - kept


def test_a_url_expired_before_the_first_byte_says_so(fault_server: FaultServer, tmp_path):
    url = fault_server.add("/gone.bin", DATA, deny_after_requests=0, deny_body=GCS_BODY)
    with pytest.raises(DownloadError, match=r"^signed URL expired: HTTP 403 from .*/gone\.bin\?\*\*\*;"):
        download(url + "?X-Goog-Signature=SECRET", str(tmp_path), concurrency=2, options=OPTS)
    assert len(fault_server.resource(url).requests) == 1
