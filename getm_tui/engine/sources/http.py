"""The http(s) source: probing a URL, GETs that follow redirects, and range requests.

How a GET goes out (connections, TLS, proxies) is the Session's business (http_session.py); this module
decides what to ask for and what an answer means.

The probe is a GET with `Range: bytes=0-`, not a HEAD: presigned S3/GCS URLs are signed for one method,
so a HEAD is refused where the GET works. One request tells size, range support, validator, a file name
and advertised checksums, and when the file is small its body is the whole download.
"""

from __future__ import annotations

import email.utils
import logging
import re
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from getm_tui.engine import checksum, checksum_headers, expiry, retry
from getm_tui.engine.errors import (
    DownloadError,
    HTTPStatusError,
    RemoteChanged,
    Retryable,
    RetryableStatus,
    SignatureExpired,
)
from getm_tui.engine.files import sanitize_name
from getm_tui.engine.sources import http_session
from getm_tui.engine.sources.base import Access, Signer, Transport
from getm_tui.engine.sources.http_session import HTTPSettings, Reply, Session
from getm_tui.engine.urls import name_from_url, redact

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504}) | frozenset(range(505, 600))

NOTABLE_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "ETag",
    "Last-Modified",
    "Content-Disposition",
    "Content-MD5",
    "x-goog-hash",
    "x-goog-stored-content-length",
    "Repr-Digest",
    "Content-Digest",
    "Digest",
    "Server",
    "x-amz-server-side-encryption",
    "Transfer-Encoding",
    "Content-Encoding",
)


@dataclass
class Probe:
    """What one GET told about the remote file."""

    url: str
    status: int
    size: int | None
    ranges: bool
    etag: str | None
    last_modified: str | None
    filename: str
    expected: list[checksum.Expected]
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    # What authorizes each request for the bytes (a bucket's credentials); None for a plain URL.
    signer: Signer | None = None
    # What opens the file's ranges when it is not HTTP (FTP, SFTP); None for the HTTP transport.
    transport: Transport | None = None

    def __repr__(self) -> str:
        """Without the URL's password or signed query, nor the headers (a Set-Cookie): a repr reaches logs."""
        return f"Probe({redact(self.url)!r}, status={self.status}, size={self.size}, ranges={self.ranges})"

    @property
    def validator(self) -> str | None:
        """The If-Range value: a strong ETag, else Last-Modified (weak ETags may not be used there)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


def get(
    session: Session,
    url: str,
    settings: HTTPSettings,
    headers: dict[str, str] | None = None,
    signer: Signer | None = None,
    method: str = "GET",
) -> Reply:
    """A streamed GET (or HEAD) that follows redirects by hand (bounded, no https->http unless allowed).

    `signer` authorizes each request as it is sent, on the first URL's origin only: a redirect elsewhere
    never carries the credentials. Raises Retryable for transient faults and HTTPStatusError for the rest
    of the non-2xx answers.
    """
    first = url
    origin = urlsplit(url)[:2]
    for _hop in range(settings.max_redirects + 1):
        sent = headers
        if signer is not None and urlsplit(url)[:2] == origin:
            sent = {**(headers or {})}
            sent.update(signer.sign(method, url, sent))
        try:
            resp = session.fetch(url, sent, settings, method)
        except http_session.BAD_URL_ERRORS as e:
            raise DownloadError(f"invalid URL {redact(url)}: {describe_error(e)}") from None
        except http_session.CONNECTION_ERRORS as e:
            if _tls_failure(e):
                raise DownloadError(tls_message(e, url)) from None
            unresolved = _find(e, socket.gaierror)
            if isinstance(unresolved, socket.gaierror) and unresolved.errno != socket.EAI_AGAIN:
                # The name has no address: asking again in a minute will not give it one (a resolver's
                # "try again later" is retried like any dropped connection).
                raise DownloadError(f"cannot resolve host {urlsplit(url).hostname}") from None
            raise Retryable(f"{describe_error(e)} ({redact(url)})") from None
        if resp.is_redirect:
            location = resp.headers.get("Location", "")
            resp.close()
            target = urljoin(url, location)
            downgrade = urlsplit(url).scheme == "https" and urlsplit(target).scheme == "http"
            if downgrade and not settings.allow_insecure_redirect:
                raise DownloadError(
                    f"refused redirect from https to http: {redact(target)} "
                    "(allow_insecure_redirect = true follows it)"
                )
            url = target
            continue
        if resp.status_code in RETRY_STATUSES:
            after = retry.parse_retry_after(resp.headers.get("Retry-After"))
            reason = resp.reason or ""
            resp.close()
            raise RetryableStatus(resp.status_code, reason, redact(url), after)
        if resp.status_code >= 400:
            raise refusal(resp, url, query_signed=signer is None)
        resp.url = url
        return resp
    # Named by the URL asked for: the one the user knows (the last hop may be anywhere).
    raise DownloadError(f"too many redirects (more than {settings.max_redirects}) from {redact(first)}")


def refusal(resp: Reply, url: str, query_signed: bool = True) -> HTTPStatusError:
    """The error for a 4xx answer (the response is closed): SignatureExpired when it says a signed URL's
    time is up, which the start of its body tells (the body is read only for statuses that can mean it).

    `query_signed`: the URL carries its own signature. A request we signed ourselves (s3://, gs://) is
    signed afresh each time: its refusal is about the credentials, not the URL."""
    status, reason = resp.status_code, resp.reason or ""
    body = b""
    if query_signed and status in (400, 401, 403):
        try:
            body = resp.raw.read(expiry.BODY_PEEK) or b""
        except http_session.connection_errors(ValueError):
            body = b""
    resp.close()
    if expiry.refusal_is_expiry(status, body, url):
        message = expiry.expired_message(redact(url), expiry.expires_at(url))
        return SignatureExpired(status, reason, redact(url), message)
    return HTTPStatusError(status, reason, redact(url))


def probe(
    session: Session,
    url: str,
    settings: HTTPSettings,
    signer: Signer | None = None,
    ask: dict[str, str] | None = None,
) -> tuple[Probe, Reply]:
    """Probe the URL; returns the facts and the still-open response (its body starts at byte 0).

    `ask`: more header fields for the probe (a bucket's checksum mode)."""
    want = {"Want-Repr-Digest": "sha-256=9, sha-512=8, md5=3", **(ask or {})}
    try:
        resp = get(session, url, settings, {**range_headers(0, None, None), **want}, signer)
    except HTTPStatusError as e:
        if e.status != 416:
            raise
        # An empty file: servers refuse any range of it (get() raises on a 416, so it is caught here).
        resp = get(session, url, settings, want, signer)
    h = resp.headers
    chunked = "chunked" in h.get("Transfer-Encoding", "").lower()
    size: int | None = None
    ranges = False
    full_body = True
    if resp.status_code == 206:
        first, last, total = parse_content_range(h.get("Content-Range", ""))
        if first != 0:
            resp.close()
            raise Retryable(f"bad Content-Range {h.get('Content-Range')!r} from {redact(resp.url)}")
        size = total
        ranges = total is not None
        full_body = total is not None and last == total - 1
    elif not chunked and h.get("Content-Length", "").isdigit():
        size = int(h["Content-Length"])
    enc = h.get("Content-Encoding", "identity").lower()
    if enc not in ("identity", ""):
        log.warning("server sent Content-Encoding %s despite identity; saving the encoded bytes", enc)
    result = Probe(
        url=resp.url,
        status=resp.status_code,
        size=size,
        ranges=ranges,
        etag=h.get("ETag"),
        last_modified=h.get("Last-Modified"),
        filename=filename_from(h.get("Content-Disposition"), resp.url),
        expected=checksum_headers.from_headers(h, full_body=full_body),
        headers={k: h[k] for k in NOTABLE_HEADERS if k in h},
        chunked=chunked,
        signer=signer,
    )
    return result, resp


def open_range(session: Session, probe: Probe, first: int, end: int | None, settings: HTTPSettings) -> Reply:
    """A response of bytes [first, end) of the probed file. Raises RemoteChanged when the file changed
    since the probe (the whole file came back), Retryable when other bytes did."""
    resp = get(session, probe.url, settings, range_headers(first, end, probe.validator), probe.signer)
    if not answers_range(resp, first, end):
        raise RemoteChanged("the remote file changed (range answered with the whole file)")
    return resp


def open_from(session: Session, probe: Probe, settings: HTTPSettings, first: int) -> Reply:
    """The file from byte `first` on over the probe's transport: the whole file again when `first` is 0
    (a plain GET over HTTP, which works whether or not the server does ranges), else a range request.
    Raises RemoteChanged when the file changed since the probe."""
    if probe.transport is not None:
        return probe.transport.open(first, None, settings)
    if not first:
        return get(session, probe.url, settings, signer=probe.signer)
    return open_range(session, probe, first, None, settings)


class HTTPSource:
    """http and https URLs: probing and byte ranges (a plain URL needs no credentials). The Source of the
    scheme, with the listing of directory pages, is index_page.SOURCE."""

    def probe(
        self, session: Session, url: str, settings: HTTPSettings, access: Access
    ) -> tuple[Probe, Reply]:
        return probe(session, url, settings)

    def open_range(
        self, session: Session, probe: Probe, first: int, end: int | None, settings: HTTPSettings
    ) -> Reply:
        return open_range(session, probe, first, end, settings)


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)


def done_with(resp: Reply) -> None:
    """Hand a response's connection back for the next request if its body was read to the end, else close.

    Our readers (the workers' parts, the in-process path's small files) take the body from http.client
    directly, into shared memory or a reused buffer, so urllib3 never sees the end and `close()` would
    drop a connection the server keeps alive: a queue of 1,000 small files opened 1,000 connections. A
    body not read to its end (a cut range, a wrong length) is never handed on: its rest would be read as
    the next response.
    """
    raw = resp.raw
    body = getattr(raw, "_fp", None)
    if body is not None and body.isclosed() and not getattr(body, "will_close", True):
        raw.release_conn()
    else:
        resp.close()


def body_reader(resp: Reply) -> Callable[[memoryview], int]:
    """The `readinto` of a response's body: http.client's own (`_fp` of urllib3's body and of direct's),
    which reads straight into the caller's buffer without a copy in Python."""
    fp = getattr(resp.raw, "_fp", None)
    readinto: Callable[[memoryview], int] = fp.readinto if fp is not None else resp.raw.readinto
    return readinto


def range_headers(first: int, end: int | None, validator: str | None) -> dict[str, str]:
    """The header fields asking for bytes [first, end) of the file (to its end when `end` is None). With
    If-Range, a file that changed since the probe is answered with the whole new file (200) instead of a
    range of it, which `answers_range` tells apart."""
    headers = {"Range": f"bytes={first}-{'' if end is None else end - 1}"}
    if validator:
        headers["If-Range"] = validator
    return headers


def answers_range(resp: Reply, first: int, end: int | None) -> bool:
    """Whether `resp` is the range of `range_headers(first, end, ...)`. False when the server sent the whole
    file instead (200: it changed under If-Range, or it ignores ranges); raises Retryable when its
    Content-Range names other bytes. The response is closed unless it is the range asked for."""
    if resp.status_code != 206:
        resp.close()
        return False
    got_first, got_last, _total = parse_content_range(resp.headers.get("Content-Range", ""))
    if got_first != first or (end is not None and got_last != end - 1):
        resp.close()
        raise Retryable(f"wrong Content-Range {resp.headers.get('Content-Range')!r}")
    return True


def parse_content_range(value: str) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) of a `Content-Range: bytes a-b/total` header; Nones where absent."""
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None, None, None
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


def filename_from(disposition: str | None, url: str) -> str:
    """A safe file name: Content-Disposition's filename* or filename, else the URL's last segment."""
    name = ""
    if disposition:
        msg = Message()
        msg["Content-Disposition"] = disposition
        try:
            # The email package files `filename*` (RFC 2231) under "filename" as a (charset, language,
            # value) tuple whose value it percent-decoded as latin-1; prefer it over a plain filename.
            found = [
                v for k, v in msg.get_params(header="Content-Disposition") or [] if k.lower() == "filename"
            ]
            raw: Any = next((v for v in found if isinstance(v, tuple)), found[0] if found else None)
            if isinstance(raw, tuple):
                raw = email.utils.collapse_rfc2231_value(raw, errors="replace")
        except Exception:  # a hostile header must not break the download
            raw = None
        if isinstance(raw, str) and raw.lower().startswith("utf-8''"):
            raw = unquote(raw[7:], errors="replace")
        name = sanitize_name(raw if isinstance(raw, str) else None)
    return name or sanitize_name(name_from_url(url))


def _tls_failure(e: BaseException) -> bool:
    """Whether urllib3 failed the TLS handshake (as requests tells SSLError from other connection errors:
    a TLS error while reading a response is a dropped connection, retried)."""
    urllib3 = sys.modules.get("urllib3")
    if urllib3 is None:
        return False  # nothing but urllib3 makes TLS connections here
    if isinstance(e, urllib3.exceptions.MaxRetryError):
        return isinstance(e.reason, urllib3.exceptions.SSLError)
    return isinstance(e, urllib3.exceptions.SSLError)


def _find(e: BaseException | None, kind: type[BaseException], depth: int = 0) -> BaseException | None:
    """The first exception of `kind` inside `e`: requests wraps urllib3's, which wraps ssl's, in args,
    `reason`, causes and contexts."""
    if e is None or depth > 8:
        return None
    if isinstance(e, kind):
        return e
    inner: list[Any] = [*e.args, getattr(e, "reason", None), e.__cause__, e.__context__]
    for candidate in inner:
        if isinstance(candidate, BaseException):
            found = _find(candidate, kind, depth + 1)
            if found is not None:
                return found
    return None


def tls_message(e: BaseException, url: str) -> str:
    """One line for a TLS failure: what the certificate check said, the redacted URL, and the way out.

    The way out is named but not taken: verification stays on unless the user asks (`--insecure`).
    """
    verify = _find(e, ssl.SSLCertVerificationError)
    if isinstance(verify, ssl.SSLCertVerificationError):
        why = verify.verify_message or verify.reason or "certificate verify failed"
        return f"TLS certificate verification failed for {redact(url)}: {why} (--insecure skips verification)"
    inner = _find(e, ssl.SSLError)
    why = describe_error(e) if inner is None else (getattr(inner, "reason", None) or describe_error(inner))
    return f"TLS error from {redact(url)}: {why}"


def describe_error(e: BaseException) -> str:
    """One line for an exception out of requests/urllib3, without the URL (which may carry secrets)."""
    text = str(e)
    inner = e
    while inner.__context__ is not None and isinstance(inner.__context__, Exception):
        inner = inner.__context__
    for candidate in (inner, e):
        name = type(candidate).__name__
        if "timed out" in str(candidate).lower() or "Timeout" in name:
            return "timed out"
        if "Connection refused" in str(candidate):
            return "connection refused"
        if "reset" in str(candidate).lower():
            return "connection reset"
        if "Name or service not known" in str(candidate) or "NameResolution" in str(candidate):
            return "host not found"
    text = re.sub(r"https?://\S+", "<url>", text)
    text = re.sub(r"url: \S+", "url: <url>", text)
    return text.splitlines()[0][:200] if text else type(e).__name__
