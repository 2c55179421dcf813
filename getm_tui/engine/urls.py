"""URL checks and redaction.

Signed S3/GCS URLs carry their credentials in the query string and some URLs carry user:password; neither
may reach a screen or a log (DESIGN invariant 4), so everything user-facing goes through `redact`.
"""

from __future__ import annotations

import os
import posixpath
from urllib.parse import unquote, urlsplit, urlunsplit

from getm_tui.engine.errors import UsageError

SCHEMES = ("http", "https", "file")


def validate(url: str) -> str:
    """Return the URL stripped of surrounding blanks, or raise UsageError naming what is wrong."""
    url = url.strip()
    if not url:
        raise UsageError("empty URL")
    if any(ord(c) < 32 or c == " " for c in url):
        raise UsageError(f"malformed URL (contains spaces or control characters): {redact(url)!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UsageError(f"malformed URL: {redact(url)!r} ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = redact(url)
        if not scheme:
            raise UsageError(f"malformed URL (no scheme, expected http://, https:// or file://): {shown!r}")
        raise UsageError(f"unsupported URL scheme {scheme!r} (expected http, https or file): {shown!r}")
    if scheme in ("http", "https") and not parts.hostname:
        raise UsageError(f"malformed URL (no host): {redact(url)!r}")
    if scheme == "file" and not parts.path:
        raise UsageError(f"malformed URL (no path): {redact(url)!r}")
    del port
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
