"""URL checks and redaction.

Signed S3/GCS URLs carry their credentials in the query string and some URLs carry user:password; neither
may reach a screen or a log (ARCHITECTURE.md, invariant 5), so everything user-facing goes through `redact`.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from urllib.parse import unquote, urlsplit, urlunsplit

from getm_tui.engine.errors import UsageError

SCHEMES = ("http", "https", "file", "s3", "gs", "ftp", "ftps", "sftp")
# The schemes with connections of their own: a host is required, and a user:password may come with it.
REMOTE_SCHEMES = ("ftp", "ftps", "sftp")
# A character at a time in Python, this check cost more than the rest of a queued small file's checks: a
# signed URL is a kilobyte long.
_BLANK_OR_CONTROL = re.compile(r"[\x00-\x20]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate(url: str) -> str:
    """Return the URL stripped of surrounding blanks, or raise UsageError naming what is wrong."""
    url = url.strip()
    if not url:
        raise UsageError("empty URL")
    if url[:5].lower() in ("s3://", "gs://"):
        return _bucket_url(url)
    if _BLANK_OR_CONTROL.search(url):
        raise UsageError(f"malformed URL (contains spaces or control characters): {redact(url)!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UsageError(f"malformed URL: {redact(url)!r} ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = redact(url)
        known = ", ".join(f"{s}://" for s in SCHEMES)
        if not scheme:
            raise UsageError(f"malformed URL (no scheme; expected one of {known}): {shown!r}")
        raise UsageError(f"unsupported URL scheme {scheme!r} (expected one of {known}): {shown!r}")
    if scheme in ("http", "https", *REMOTE_SCHEMES) and not parts.hostname:
        raise UsageError(f"malformed URL (no host): {redact(url)!r}")
    if scheme == "file" and not parts.path:
        raise UsageError(f"malformed URL (no path): {redact(url)!r}")
    del port
    return url


def _bucket_url(url: str) -> str:
    """An s3:// or gs:// URL names its key as written, as the clouds' own tools take it: a key may hold
    spaces, `?` or `#` (a listing hands out such keys), so only control characters and a missing or
    user-qualified bucket are refused."""
    scheme, rest = url[:2].lower(), url[5:]
    bucket = rest.split("/", 1)[0]
    if _CONTROL.search(url):
        raise UsageError(f"malformed URL (contains control characters): {redact(url)!r}")
    if not bucket or _BLANK_OR_CONTROL.search(bucket) or "@" in bucket or "?" in bucket or "#" in bucket:
        raise UsageError(f"malformed URL (expected {scheme}://BUCKET/KEY): {redact(url)!r}")
    return url


def redact(url: str) -> str:
    """The URL with any user:password and the whole query string replaced, for screens and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def name_from_url(url: str) -> str:
    """The last path segment of the URL, decoded; empty when the path ends in '/'."""
    path = urlsplit(url).path
    return unquote(posixpath.basename(path))


def file_path(url: str) -> str:
    """The local path of a file:// URL."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc and parts.netloc != "localhost":
        path = "//" + parts.netloc + path
    return os.path.normpath(path)


_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
# A request target with a query, as urllib3's debug lines show it: `"GET /key?X-Amz-Signature=... HTTP/1.1"`.
_TARGET_QUERY = re.compile(r"(?<![\w:/])(/[^\s?\"'<>]*)\?[^\s\"'<>]+")


def redact_text(text: str) -> str:
    """Any URL in free text redacted, and any query after a bare path: for log lines written by code we
    do not control (urllib3 logs every request's path and query at debug level)."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact(m.group(0)), text)
    if "?" in text:
        text = _TARGET_QUERY.sub(lambda m: m.group(1) + "?***", text)
    return text


class RedactingFilter(logging.Filter):
    """Put on a log handler: every record it writes has its URLs redacted (`-vv` included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
