"""What the bucket sources (s3.py, gcs.py) share: their URLs, their refusals, the checksums they hand out
in base64, and reading a small signed answer (an object's metadata, a page of a listing)."""

from __future__ import annotations

import base64
import binascii
import logging

from getm_tui.engine.checksum import DIGEST_BYTES, Expected
from getm_tui.engine.errors import DownloadError, HTTPStatusError, UsageError
from getm_tui.engine.sources import http
from getm_tui.engine.sources.base import Signer
from getm_tui.engine.sources.http import Probe
from getm_tui.engine.sources.http_session import HTTPSettings, Reply, Session

log = logging.getLogger(__name__)

# Keys asked for per page of a listing (S3's max-keys, GCS's maxResults): both stores' most, 1,000, so a
# prefix of millions costs the fewest requests while a page stays small in memory.
PAGE_SIZE = 1000


def split_url(url: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key` or `gs://bucket/key`; the key is taken as written (keys are not
    URL-encoded)."""
    bucket, _, key = url.split("://", 1)[1].partition("/")
    if not bucket:
        raise UsageError(f"malformed URL (no bucket): {url!r}")
    return bucket, key


def object_of(url: str) -> tuple[str, str]:
    """(bucket, key) of a URL that must name one object, not a prefix."""
    bucket, key = split_url(url)
    if not key or key.endswith("/"):
        raise UsageError(f"{url} names a prefix, not an object (`getm-tui add` queues its objects)")
    return bucket, key


def listing_root(prefix: str) -> str:
    """The prefix a listing asks for: `data` lists `data/...` (a directory), not `database.csv` too."""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def refusal(e: HTTPStatusError, url: str, signer: Signer | None, hint: str) -> HTTPStatusError:
    """A bucket's refusal in the user's terms: the bucket URL, and where credentials come from."""
    if e.status in (401, 403):
        how = "anonymously" if signer is None else "with the credentials found"
        return HTTPStatusError(e.status, f"Forbidden (read {how}; {hint})", url)
    if e.status == 404:
        return HTTPStatusError(404, "Not Found", url)
    if e.status == 301:
        return HTTPStatusError(301, "the bucket is in another region: set AWS_REGION", url)
    return HTTPStatusError(e.status, str(e).split(" from ", 1)[0].split(" ", 2)[-1], url)


def digest(value: str, algorithm: str, source: str) -> Expected | None:
    """A base64 checksum as the buckets send them, or None (with a warning) when it is malformed."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != DIGEST_BYTES[algorithm]:
        log.warning("ignoring malformed %s %r", source, value[:80])
        return None
    return Expected(algorithm, raw.hex(), source)


def read_small(
    session: Session, url: str, settings: HTTPSettings, signer: Signer | None, shown: str, hint: str
) -> bytes:
    """The whole body of a small signed answer (metadata, a listing page), its connection kept."""
    try:
        resp = http.get(session, url, settings, None, signer)
    except HTTPStatusError as e:
        raise refusal(e, shown, signer, hint) from None
    body: bytes = resp.raw.read()
    http.done_with(resp)
    if not isinstance(body, bytes):
        raise DownloadError(f"unreadable answer about {shown}")
    return body


class OverHTTP:
    """A bucket source's byte ranges: plain range requests of the probed HTTP URL, signed by its signer."""

    def open_range(
        self, session: Session, probe: Probe, first: int, end: int | None, settings: HTTPSettings
    ) -> Reply:
        return http.open_range(session, probe, first, end, settings)
