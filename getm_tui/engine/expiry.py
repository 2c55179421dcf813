"""When a signed URL stops working, and whether a refusal means that it has.

A presigned S3 or GCS URL carries its own deadline in the query (S3 SigV4 `X-Amz-Date` + `X-Amz-Expires`,
GCS V4 `X-Goog-Date` + `X-Goog-Expires`, S3 SigV2, GCS V2 and CloudFront `Expires` in epoch seconds). A
download longer than that is refused half-way with a 403; told apart from other refusals, the job stops
with a line that says what to do (give it a new URL) and keeps its parts, where a plain 403 would say
nothing useful. Only the deadline is ever shown: the rest of the query is a secret.
"""

from __future__ import annotations

import calendar
import re
import time
from urllib.parse import parse_qsl, urlsplit

# What S3 (`<Message>Request has expired</Message>`, SigV2's `Request has expired`), GCS (`ExpiredToken`,
# `Request has expired`) and other stores built on them say in a refusal's body when the signature's time
# is up. Matched case-insensitively, on the start of the body only.
_EXPIRED_BODY = re.compile(
    rb"request has expired|expiredtoken|signature (?:has )?expired|token (?:has )?expired", re.I
)
# How much of a refusal's body is read to tell why: S3's and GCS's XML errors are a few hundred bytes.
BODY_PEEK = 4096
_ISO_BASIC = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")


def expires_at(url: str) -> float | None:
    """The epoch second after which the URL's signature is refused, when its query says; else None."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    if not query:
        return None
    fields = {k.lower(): v for k, v in parse_qsl(query, keep_blank_values=True)}
    for prefix in ("x-amz-", "x-goog-"):
        start, lifetime = fields.get(prefix + "date"), fields.get(prefix + "expires")
        if start is not None and lifetime is not None and lifetime.isdigit():
            signed = _iso_basic(start)
            if signed is not None:
                return signed + int(lifetime)
    epoch = fields.get("expires")
    if epoch is not None and epoch.isdigit():
        return float(epoch)
    return None


def _iso_basic(text: str) -> float | None:
    """Seconds since the epoch of `20260102T030405Z` (the signing time of SigV4 and GCS V4)."""
    m = _ISO_BASIC.match(text)
    if not m:
        return None
    try:
        return float(calendar.timegm(tuple(int(g) for g in m.groups()) + (0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def refusal_is_expiry(status: int, body: bytes, url: str, now: float | None = None) -> bool:
    """Whether a refusal of `url` means its signature's time is up: the store says so in the body, or a
    403 came after the deadline the URL states."""
    if status not in (400, 401, 403):
        return False
    if _EXPIRED_BODY.search(body[:BODY_PEEK]):
        return True
    deadline = expires_at(url)
    return status == 403 and deadline is not None and (time.time() if now is None else now) >= deadline


def format_deadline(deadline: float) -> str:
    """The deadline for people, in UTC (a URL's deadline is the same everywhere)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(deadline))


EXPIRED = "signed URL expired"


def expired_message(url_shown: str, deadline: float | None) -> str:
    """The one line a download that met an expired signature stops with (`url_shown` is redacted). It
    starts with EXPIRED, which is what a caller that knows how to give it a new URL looks for (the line
    crosses process boundaries as text)."""
    when = f" (at {format_deadline(deadline)})" if deadline is not None else ""
    return f"{EXPIRED}{when}: HTTP 403 from {url_shown}; the parts fetched are kept for a new URL of it"


def will_outlast(
    deadline: float | None, remaining: int | None, rate: float, now: float | None = None
) -> bool:
    """Whether a download with `remaining` bytes to go at `rate` bytes/s would still be running at the
    deadline (False when any of them is unknown)."""
    if deadline is None or remaining is None or rate <= 0:
        return False
    return (time.time() if now is None else now) + remaining / rate > deadline


def deadline_note(
    url: str, remaining: int | None, rate: float | None, now: float | None = None
) -> tuple[str, bool] | None:
    """What `show` and the app's details say of a URL's deadline: the time (UTC) and how far off it is,
    and whether to warn (past, or the download at `rate` would not finish before it); None when the URL
    states no deadline."""
    deadline = expires_at(url)
    if deadline is None:
        return None
    now = time.time() if now is None else now
    when = format_deadline(deadline)
    if now >= deadline:
        return f"{when} (expired: give the job a new URL)", True
    left = _span(deadline - now)
    if will_outlast(deadline, remaining, rate or 0.0, now):
        return f"{when} (in {left}; will not finish before it at the current speed)", True
    return f"{when} (in {left})", False


def _span(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
