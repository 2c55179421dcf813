"""The s3:// source: objects of an S3 bucket (or of MinIO, Ceph, R2 and other S3 stores) over HTTP.

botocore, imported on the first s3:// URL, does what it is made for: the standard credential chain
(environment, profiles and AWS_PROFILE, SSO, assumed roles, instance metadata), the endpoint (the region's,
AWS_ENDPOINT_URL, a profile's endpoint_url) and SigV4. The bytes go over the engine's own HTTP transport,
each request signed when it is sent (S3Signer): a download that outlives one signature's fifteen minutes
or one session token's hour keeps going, and fetch workers keep their connections.

What the bucket knows about the object's integrity is asked for before the first byte: additional
checksums with checksum mode, and for a multipart ETag the size of its parts (a HEAD of part 1), so the
layout is found, not guessed.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from getm_tui.engine.checksum import COMPOSITE, S3_ETAG, Expected
from getm_tui.engine.errors import DownloadError, HTTPStatusError
from getm_tui.engine.files import sanitize_name
from getm_tui.engine.sources import bucket as bucket_urls
from getm_tui.engine.sources import http
from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.http import Probe
from getm_tui.engine.sources.http_session import HTTPSettings, Reply, Session, make_session
from getm_tui.engine.sources.listing import RemoteEntry, relative_to

log = logging.getLogger(__name__)
# botocore's signer logs each canonical request at debug level, session token included: never shown.
logging.getLogger("botocore.auth").setLevel(logging.INFO)
# botocore loads urllib3's pyOpenSSL support whenever pyOpenSSL is installed (the FTPS test server needs
# it), and pyOpenSSL's import warns that cryptography deprecates DSA: a line on stderr of every s3://
# command, about nothing used here.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"OpenSSL\.")

# S3's additional checksums, by header.
_CHECKSUM_HEADERS = {
    "x-amz-checksum-crc32c": "crc32c",
    "x-amz-checksum-crc32": "crc32",
    "x-amz-checksum-crc64nvme": "crc64nvme",
    "x-amz-checksum-sha1": "sha1",
    "x-amz-checksum-sha256": "sha256",
}
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_HINT = "check AWS_PROFILE, or --anonymous for a public bucket"


class S3Signer:
    """SigV4 for one bucket's requests, with botocore's S3SigV4Auth, at the moment each is sent.

    In the process that looked the credentials up it holds botocore's credentials object, which refreshes
    itself (assumed roles, SSO, instance metadata); pickled (into a fetch task) it becomes a snapshot of
    the current key, secret and token. None of them is ever shown: the repr names the region only.
    """

    def __init__(self, credentials: Any, region: str) -> None:
        self._credentials = credentials
        self.region = region

    def __repr__(self) -> str:
        return f"S3Signer(region={self.region!r})"

    def __getstate__(self) -> dict[str, Any]:
        frozen = self._credentials.get_frozen_credentials()
        return {"frozen": (frozen.access_key, frozen.secret_key, frozen.token), "region": self.region}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from botocore.credentials import Credentials

        self._credentials = Credentials(*state["frozen"])
        self.region = state["region"]

    def sign(self, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, headers=dict(headers))
        S3SigV4Auth(self._credentials.get_frozen_credentials(), "s3", self.region).add_auth(request)
        return {k: str(v) for k, v in request.headers.items() if k not in headers}


@dataclass(frozen=True)
class _Bucket:
    """Where one bucket's objects are reached: `base` + the quoted key, and what signs the requests."""

    base: str
    signer: S3Signer | None
    region: str
    aws: bool  # on AWS itself (not a custom endpoint): the bucket's region may differ from ours


_buckets: dict[tuple[str, bool], _Bucket] = {}
_buckets_lock = threading.Lock()


def _bucket(bucket: str, access: Access) -> _Bucket:
    """The bucket's endpoint and signer, looked up once per process (a botocore session costs 0.1 s)."""
    key = (bucket, access.anonymous)
    with _buckets_lock:
        found = _buckets.get(key)
        if found is None:
            found = _buckets[key] = _resolve(bucket, access)
    return found


def _resolve(bucket: str, access: Access) -> _Bucket:
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    try:
        session = botocore.session.get_session()
        credentials = None if access.anonymous else session.get_credentials()
        client = session.create_client("s3", config=Config(signature_version=UNSIGNED))
        style = (session.get_scoped_config().get("s3") or {}).get("addressing_style", "auto")
    except BotoCoreError as e:
        raise DownloadError(f"S3 configuration: {e}") from None
    endpoint = client.meta.endpoint_url.rstrip("/")
    region = client.meta.region_name or "us-east-1"
    parts = urlsplit(endpoint)
    aws = (parts.hostname or "").endswith(".amazonaws.com")
    virtual = style == "virtual" or (style != "path" and aws)
    if virtual and _DNS_BUCKET.fullmatch(bucket) and "." not in bucket:
        base = f"{parts.scheme}://{bucket}.{parts.netloc}{parts.path}"
    else:
        base = f"{endpoint}/{quote(bucket, safe='')}"
    signer = None
    if credentials is not None:
        signer = S3Signer(credentials, region)
    elif not access.anonymous:
        log.info("no AWS credentials found: s3://%s is read anonymously", bucket)
    return _Bucket(base, signer, region, aws)


def http_url(found: _Bucket, key: str, query: dict[str, str] | None = None) -> str:
    url = f"{found.base}/{quote(key, safe='/~')}"
    return f"{url}?{urlencode(query, quote_via=quote)}" if query else url


class S3Source(bucket_urls.OverHTTP):
    """s3:// URLs as a Source (see source.py)."""

    def probe(
        self, session: Session, url: str, settings: HTTPSettings, access: Access
    ) -> tuple[Probe, Reply]:
        bucket, key = bucket_urls.object_of(url)
        found = _bucket(bucket, access)
        try:
            probe, resp = http.probe(
                session, http_url(found, key), settings, found.signer, {"x-amz-checksum-mode": "ENABLED"}
            )
        except HTTPStatusError as e:
            raise bucket_urls.refusal(e, url, found.signer, _HINT) from None
        probe.filename = sanitize_name(key.rsplit("/", 1)[-1]) or probe.filename
        probe.expected = _with_layout(session, found, key, settings, probe, resp.headers)
        return probe, resp

    def listing(self, url: str, settings: HTTPSettings, access: Access) -> Iterator[RemoteEntry]:
        """ListObjectsV2, a page (bucket.PAGE_SIZE keys) at a time, following continuation tokens: a prefix
        of millions of keys is never held in memory. Keys come URL-encoded (`encoding-type=url`) so that
        any byte a key holds survives the XML, and reach `local_path` unmodified."""
        bucket, prefix = bucket_urls.split_url(url)
        root = bucket_urls.listing_root(prefix)
        found = _bucket(bucket, access)
        session = make_session(settings)
        try:
            token: str | None = None
            while True:
                query = {
                    "list-type": "2",
                    "prefix": root,
                    "encoding-type": "url",
                    "max-keys": str(bucket_urls.PAGE_SIZE),
                }
                if token:
                    query["continuation-token"] = token
                page = _xml(
                    session, f"{found.base}/?{urlencode(query, quote_via=quote)}", found, settings, url
                )
                for item in page.iter(f"{_NS}Contents"):
                    key = unquote(_text(item, "Key"))
                    if key.endswith("/") and _text(item, "Size") == "0":
                        continue  # a "folder" placeholder of the consoles, not a file
                    etag = _text(item, "ETag") or None
                    yield RemoteEntry(
                        path=relative_to(root, key),
                        url=f"s3://{bucket}/{key}",
                        size=int(_text(item, "Size") or 0),
                        modified=_iso_time(_text(item, "LastModified")),
                        etag=etag,
                        checksums=tuple(_etag_checksum(etag)),
                    )
                if _text(page, "IsTruncated") != "true":
                    return
                token = _text(page, "NextContinuationToken")
                if not token:
                    return
        finally:
            session.close()


SOURCE = S3Source()


def _with_layout(
    session: Session, found: _Bucket, key: str, settings: HTTPSettings, probe: Probe, headers: Any
) -> list[Expected]:
    """The probe's checksums, with the bucket's additional checksums, and a multipart ETag or composite
    checksum tied to the part size its upload used (from a HEAD of part 1: `partNumber=1` answers with
    that part's length)."""
    out = [*probe.expected, *additional_checksums(headers)]
    multipart = [i for i, e in enumerate(out) if _part_count(e) > 1]
    if not multipart:
        return out
    resp = http.get(session, http_url(found, key, {"partNumber": "1"}), settings, None, found.signer, "HEAD")
    length = resp.headers.get("Content-Length", "")
    http.done_with(resp)
    if not length.isdigit() or int(length) == 0:
        log.info("no part size for %s: the multipart layout will be guessed", key)
        return out
    for i in multipart:
        out[i] = replace(out[i], part_size=int(length))
    return out


def _part_count(e: Expected) -> int:
    """How many parts a multipart ETag or a composite checksum covers; 0 for a whole-object value."""
    m = (S3_ETAG if e.algorithm == "s3etag" else COMPOSITE).fullmatch(e.value)
    return int(m.group(2)) if m is not None and m.group(2) else 0


def additional_checksums(headers: Any) -> list[Expected]:
    """S3's x-amz-checksum-* fields of a whole object's answer. A composite value (`BASE64-N`, ChecksumType
    COMPOSITE, of a multipart upload) is the checksum of the N parts' checksums: it is kept as `hex-N`,
    which the Verifier tests part by part once it knows the part size. A FULL_OBJECT value (the only kind
    CRC64NVME has) is a checksum of the bytes, multipart or not."""
    out: list[Expected] = []
    kind = str(headers.get("x-amz-checksum-type", "")).upper()  # older stores send none: the value tells
    for field, algorithm in _CHECKSUM_HEADERS.items():
        value = headers.get(field)
        if not value:
            continue
        encoded, dash, parts = value.partition("-")
        if (dash and not parts.isdigit()) or kind == ("FULL_OBJECT" if dash else "COMPOSITE"):
            log.warning("ignoring %s %r of a checksum of type %s", field, value[:80], kind)
            continue
        found = bucket_urls.digest(encoded, algorithm, field)
        if found is not None:
            out.append(replace(found, value=f"{found.value}-{int(parts)}") if dash else found)
    return out


def _etag_checksum(etag: str | None) -> list[Expected]:
    m = S3_ETAG.fullmatch((etag or "").strip('"'))
    if m is None:
        return []
    return [Expected("s3etag", m.group(0).lower(), "ETag")]


def _xml(session: Session, url: str, found: _Bucket, settings: HTTPSettings, shown: str) -> ET.Element:
    body = bucket_urls.read_small(session, url, settings, found.signer, shown, _HINT)
    try:
        return ET.fromstring(body)
    except ET.ParseError as e:
        raise DownloadError(f"unreadable listing of {shown}: {e}") from None


def _text(element: ET.Element, name: str) -> str:
    found = element.find(f"{_NS}{name}")
    return (found.text or "") if found is not None else ""


def _iso_time(text: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        try:
            return parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError):
            return None
