"""A range-capable, fault-injecting HTTP/1.1 server for the test suite.

Why this exists: the downloader speaks HTTP/1.1 range requests over keep-alive connections from several
processes at once, and most of its interesting code paths are about servers that misbehave (drops, lies
about ranges, files changing underneath it, throttling, stalls).  Real servers cannot be told to misbehave
on cue, so this server does it deterministically, counts what it did, and shuts down without leaving
threads blocked.

Usage::

    with FaultServer() as srv:            # or the ``fault_server`` pytest fixture
        url = srv.add("/f.bin", data, drop_after=1000, drop_times=1)
        ...
        srv.resource("/f.bin").requests   # what the server saw / sent

Normal behaviour (no options): ``GET`` and ``HEAD`` with ``Content-Length``, ``Accept-Ranges: bytes``, a
strong ``ETag`` (``"<md5 hex of the data>"``), ``Last-Modified``, single ``Range: bytes=a-b | a- | -n``
answered with 206 + ``Content-Range``, unsatisfiable ranges with 416 + ``Content-Range: bytes */total``,
``If-Range`` (ETag, strong comparison, or HTTP date compared to ``Last-Modified``) honoured: a mismatch
yields 200 with the full body.  Multi-range or malformed ``Range`` headers are ignored (200 full body), as
RFC 9110 allows.  Connections are kept alive between requests, including after error statuses.  Unknown
paths get a keep-alive 404.

Fault options (keyword arguments of :meth:`FaultServer.add`; all default to off).  A ``*_times`` count says
how many *eligible GET responses* the fault fires on; ``None`` (the default) means "every time".  Counts are
decremented as faults fire, so ``resource.options.drop_times`` shows what is left.

- ``drop_after=N`` (``drop_times``, ``drop_rst=False``): send the headers and the first N bytes of that
  response's body, then close the connection (FIN; with ``drop_rst=True`` a TCP RST).  Eligible: bodies
  longer than N.
- ``statuses=[503, 429, ...]``: answer the next requests (GET or HEAD), one list entry each, with that
  status and a small body instead of the resource.  ``retry_after`` (int/float/str: seconds or an HTTP
  date) adds a ``Retry-After`` header to those responses.
- ``ignore_range=True``: always 200 with the full body, no ``Accept-Ranges`` header.
- ``range_as_200=True``: like ``ignore_range`` but still advertises ``Accept-Ranges: bytes`` (a lying server).
- ``wrong_content_range=K`` (int, ``True`` == 1; ``wrong_content_range_times``): 206 responses carry the
  bytes that were asked for, but ``Content-Range`` claims ``a+K-b+K``.
- ``chunked=True``: ``Transfer-Encoding: chunked``, no ``Content-Length``, ranges ignored (200 full).
- ``no_length=True``: no ``Content-Length``, ``Connection: close``, the body is delimited by closing the
  connection; ranges ignored.
- ``short_body=N`` (``short_body_times``): correct ``Content-Length`` but N fewer body bytes are sent, then
  the connection is closed.  Eligible: non-empty bodies.
- ``extra_bytes=N`` (``extra_bytes_times``): after a complete Content-Length body, send N garbage bytes
  (``EXTRA-GARBAGE-...``) and keep the connection alive, so they precede the next response.
- ``corrupt_offset=OFF`` (``corrupt_times``): the byte at file offset OFF is xored with 0xFF in what is
  sent; ETag/Content-MD5/extra headers still describe the correct data.  Eligible: bodies covering OFF.
- ``content_md5=True``: send ``Content-MD5`` (RFC 1864: base64 of the md5 digest) of the correct bytes of
  the body being sent (the range for a 206, the full data for a 200).
- ``headers={...}``: extra headers on every 200/206 response (GET and HEAD), e.g. ``x-goog-hash``,
  ``Repr-Digest``, ``Content-Disposition``.  Static: they are not recomputed when the data changes.
- ``change_after_requests=N``, ``changed_data=bytes``: when GET number N+1 arrives, the data becomes
  ``changed_data`` (default: every byte xored with 0x55), the ETag is recomputed and ``Last-Modified``
  moves 60 s later.  That request and all later ones (GET/HEAD) see the new data.
- ``first_byte_delay=SECONDS`` (``delay_times``): wait after the headers before the first body byte.
- ``stall_after=N`` (``stall_times``): send N body bytes, then send nothing more but keep the socket open
  until the server stops (for read-timeout tests).  Eligible: bodies longer than N.
- ``rate_limit=BYTES_PER_SECOND``: throttle each response body to that rate (per connection, like nginx
  ``limit_rate``); the last byte arrives at ``body_length / rate`` seconds.
- ``deny_after_requests=N`` (``deny_status=403``, ``deny_body``): GET number N+1 and every later GET or
  HEAD is refused with that status and body (by default S3's ``AccessDenied`` / ``Request has expired``
  XML, as a presigned URL past its deadline is answered); set it to ``None`` with ``configure`` to accept
  requests again (a new URL).  The query is not looked at: resources are found by path alone.
- ``redirect_to=URL_OR_PATH`` (``redirect_status=302``, ``redirect_times``): answer GET/HEAD with a
  redirect to that ``Location``; two resources pointing at each other form a loop.
- Cosmetic: ``content_type`` (default ``application/octet-stream``), ``last_modified`` (epoch seconds),
  ``no_etag=True`` / ``no_last_modified=True`` to omit those validators.

Server-wide options (:class:`FaultServer` arguments):

- ``host="::1"``: listen on the IPv6 loopback (``base_url`` is then ``http://[::1]:PORT``).

- ``tls=ssl.SSLContext``: serve HTTPS with that server context (e.g. a ``trustme`` certificate); the
  handshake happens in the connection's thread, so a client that refuses the certificate blocks nothing.
- ``random_faults=RandomFaults(rate, seed, kinds)``: each GET, with probability ``rate`` (seeded, so a
  run can be repeated), gets one fault drawn from ``kinds``: ``drop`` / ``reset`` (FIN / RST half-way
  through the body), ``short`` (one byte fewer than Content-Length, then FIN), ``stall`` (half the body,
  then silence), ``extra`` (garbage after the body on the kept-alive connection), ``corrupt`` (one byte
  flipped), ``wrong_range`` (a 206 whose Content-Range is off by one), ``range_200`` (a range answered
  with the whole file), ``503`` / ``429`` (with ``Retry-After``) and ``500``.  A kind that cannot apply
  to a response (a drop of an empty body, a wrong range on a 200) is not fired; ``random_fired`` counts
  what did fire, per kind.  Soak tests use it: faults nobody chose, at a known rate.

Only one truncating fault fires per response, by priority ``stall_after`` > ``drop_after`` >
``short_body``.  Precedence per request: ``redirect_to`` > ``statuses`` > ``deny_after_requests`` >
normal/faulty body.

Stats (thread-safe snapshots): ``Resource.requests`` (list of :class:`RequestRecord`: the range asked for,
the body promised and sent so far, and the client's port, which tells which process asked), ``.bytes_sent``
(resource bytes written in 200/206 bodies, counted just before each send so they are up to date once a
client has them; excludes error bodies, chunk framing and ``extra_bytes`` garbage), ``.get_count``,
``.head_count``, ``.changed``; ``FaultServer.connections_accepted``, ``.open_connections`` and ``.errors``
(unexpected server-side exceptions; should stay empty); ``FaultServer.peak_busy`` (the most requests
answered at once, over all resources) and ``.all_requests`` (every record, each with the server's
``received`` and ``answered`` times, to tell what a client asked for while it was meant to wait).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import email.utils
import hashlib
import random
import re
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

__all__ = ["FaultOptions", "FaultServer", "RandomFaults", "RequestRecord", "Resource"]

#: Body write granularity: big enough that per-chunk Python overhead is negligible at GB/s, small enough
#: that faults, throttling and stop() are reacted to quickly.
CHUNK_SIZE = 256 * 1024

#: How many throttle steps per second ``rate_limit`` aims for; sleeps of ~10-20 ms are accurate on Linux
#: and the absolute schedule keeps per-step error from accumulating.
_RATE_STEPS_PER_SECOND = 50

_XOR55 = bytes(b ^ 0x55 for b in range(256))
_GARBAGE = b"EXTRA-GARBAGE-"
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_STOP_JOIN_TIMEOUT = 5.0


#: What S3 answers a presigned URL past its deadline with (403).
EXPIRED_S3_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Request has expired</Message><X-Amz-Expires>60</X-Amz-Expires></Error>"
)


@dataclass
class FaultOptions:
    """Per-resource behaviour; see the module docstring for the semantics of every field."""

    drop_after: int | None = None
    drop_times: int | None = None
    drop_rst: bool = False
    statuses: list[int] = field(default_factory=list)
    retry_after: int | float | str | None = None
    ignore_range: bool = False
    range_as_200: bool = False
    wrong_content_range: int = 0
    wrong_content_range_times: int | None = None
    chunked: bool = False
    no_length: bool = False
    short_body: int = 0
    short_body_times: int | None = None
    extra_bytes: int = 0
    extra_bytes_times: int | None = None
    corrupt_offset: int | None = None
    corrupt_times: int | None = None
    content_md5: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    change_after_requests: int | None = None
    changed_data: bytes | None = None
    first_byte_delay: float = 0.0
    delay_times: int | None = None
    stall_after: int | None = None
    stall_times: int | None = None
    rate_limit: float | None = None
    deny_after_requests: int | None = None
    deny_status: int = 403
    deny_body: str = EXPIRED_S3_BODY
    redirect_to: str | None = None
    redirect_status: int = 302
    redirect_times: int | None = None
    content_type: str = "application/octet-stream"
    last_modified: float | None = None
    no_etag: bool = False
    no_last_modified: bool = False


RANDOM_KINDS = (
    "drop",
    "reset",
    "short",
    "stall",
    "extra",
    "corrupt",
    "wrong_range",
    "range_200",
    "503",
    "429",
    "500",
)


@dataclass
class RandomFaults:
    """Server-wide random fault injection; see the module docstring."""

    rate: float = 0.05
    seed: int = 0
    kinds: tuple[str, ...] = RANDOM_KINDS
    retry_after: str = "0"

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(RANDOM_KINDS)
        if unknown:
            raise ValueError(f"unknown random fault kinds: {sorted(unknown)}")


@dataclass
class RequestRecord:
    """What one request asked for and what the server answered; ``body_bytes`` grows while sending."""

    method: str
    range: str | None
    if_range: str | None
    status: int = 0
    body_bytes: int = 0
    connection_id: int = 0
    client_port: int = 0  # the client's TCP port: which process made the request (see /proc/net/tcp)
    body_length: int = 0  # body bytes the response promised (Content-Length; 0 for error statuses)
    faults: list[str] = field(default_factory=list)
    request_headers: dict[str, str] = field(default_factory=dict)
    # time.monotonic() of the server: the request's line read, and its response sent (or cut off).
    received: float = 0.0
    answered: float = 0.0


@dataclass
class _Plan:
    """Everything needed to send one response, decided atomically under the resource lock."""

    status: int
    headers: list[tuple[str, str]]
    record: RequestRecord
    small_body: bytes = b""
    body: memoryview | None = None
    chunked: bool = False
    limit: int = 0
    end_action: str = "none"  # "none" | "close" | "rst" | "stall"
    extra: int = 0
    corrupt_rel: int | None = None
    delay: float = 0.0
    rate: float | None = None
    md5_of: memoryview | None = None  # bytes whose Content-MD5 still has to be computed


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _etag_of(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def _md5_b64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def _parse_range(value: str, total: int) -> tuple[int, int] | None | bool:
    """Resolve a single ``bytes=`` range to ``(start, end_exclusive)``.

    Returns ``None`` when the header must be ignored (multi-range, other unit, malformed, first > last) and
    ``False`` when it is syntactically fine but unsatisfiable (→ 416).
    """
    m = _RANGE_RE.match(value)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0 or total == 0:
            return False
        return max(0, total - suffix), total
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= total:
        return False
    end = total if last == "" else min(total, int(last) + 1)
    return start, end


class Resource:
    """One served file: its data, validators, fault options and request statistics.

    All mutable state is guarded by ``_lock`` because handler threads for many connections hit the same
    resource concurrently.
    """

    def __init__(self, path: str, url: str, data: bytes, options: FaultOptions) -> None:
        self.path = path
        self.url = url
        self.options = options
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._bytes_sent = 0
        self._get_count = 0
        self._head_count = 0
        self._changed = False
        lm = options.last_modified if options.last_modified is not None else time.time() - 3600
        self._set_data_locked(bytes(data), float(int(lm)))

    # ----------------------------------------------------------------- public tweaks and stats
    @property
    def data(self) -> bytes:
        with self._lock:
            return self._data

    @property
    def etag(self) -> str:
        with self._lock:
            return self._etag

    @property
    def last_modified(self) -> str:
        """The current ``Last-Modified`` header value."""
        with self._lock:
            return _http_date(self._last_modified)

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot copies of the request records, oldest first."""
        with self._lock:
            return [dataclasses.replace(r, faults=list(r.faults)) for r in self._requests]

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return self._bytes_sent

    @property
    def get_count(self) -> int:
        with self._lock:
            return self._get_count

    @property
    def head_count(self) -> int:
        with self._lock:
            return self._head_count

    @property
    def changed(self) -> bool:
        """Whether ``change_after_requests`` has fired."""
        with self._lock:
            return self._changed

    def set_data(self, data: bytes, last_modified: float | None = None) -> None:
        """Replace the data (and validators) by hand, e.g. to simulate a change at a chosen moment."""
        with self._lock:
            lm = self._last_modified + 60 if last_modified is None else float(int(last_modified))
            self._set_data_locked(bytes(data), lm)

    def configure(self, **options: Any) -> None:
        """Change fault options on the fly (unknown names raise ``TypeError``)."""
        valid = {f.name for f in dataclasses.fields(FaultOptions)}
        unknown = set(options) - valid
        if unknown:
            raise TypeError(f"unknown fault options: {sorted(unknown)}")
        with self._lock:
            for name, value in options.items():
                setattr(self.options, name, list(value) if name == "statuses" else value)

    def reset_stats(self) -> None:
        with self._lock:
            self._requests.clear()
            self._bytes_sent = 0
            self._get_count = 0
            self._head_count = 0

    # ----------------------------------------------------------------- internals
    def _set_data_locked(self, data: bytes, last_modified: float) -> None:
        self._data = data
        self._etag = _etag_of(data)
        self._md5_full = _md5_b64(data)
        self._last_modified = last_modified

    def _take(self, name: str) -> bool:
        """Consume one firing of a counted fault; ``None`` counts are unlimited.  Caller holds the lock."""
        count = getattr(self.options, name)
        if count is None:
            return True
        if count <= 0:
            return False
        setattr(self.options, name, count - 1)
        return True

    def _if_range_matches(self, value: str) -> bool:
        value = value.strip()
        if value.startswith('"') or value.startswith("W/"):
            # Strong comparison: weak tags never match (RFC 9110 §13.1.5).
            return not self.options.no_etag and value == self._etag
        if self.options.no_last_modified:
            return False
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return False
        return int(when.timestamp()) == int(self._last_modified)

    def _add_sent(self, record: RequestRecord, n: int) -> None:
        with self._lock:
            record.body_bytes += n
            self._bytes_sent += n

    def _simple(self, record: RequestRecord, status: int, headers: list[tuple[str, str]], text: str) -> _Plan:
        body = f"{status} {text}\n".encode()
        record.status = status
        headers = [*headers, ("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        return _Plan(status=status, headers=headers, record=record, small_body=body)

    def _plan(
        self,
        method: str,
        request_headers: dict[str, str],
        connection_id: int,
        forced: str | None = None,
        retry_after: str = "0",
        client_port: int = 0,
    ) -> _Plan:
        """Decide the whole response (status, headers, which faults fire) atomically.

        ``forced``: a random fault the server drew for this request (recorded as ``random:<kind>`` when it
        applies).
        """
        lower = {k.lower(): v for k, v in request_headers.items()}
        range_header = lower.get("range")
        if_range = lower.get("if-range")
        is_get = method == "GET"
        with self._lock:
            o = self.options
            rec = RequestRecord(
                method, range_header, if_range, connection_id=connection_id, client_port=client_port
            )
            rec.request_headers = dict(request_headers)
            self._requests.append(rec)
            if is_get:
                self._get_count += 1
                if (
                    o.change_after_requests is not None
                    and not self._changed
                    and self._get_count > o.change_after_requests
                ):
                    new = o.changed_data if o.changed_data is not None else self._data.translate(_XOR55)
                    self._set_data_locked(bytes(new), self._last_modified + 60)
                    self._changed = True
                    rec.faults.append("changed")
            else:
                self._head_count += 1

            if o.redirect_to is not None and self._take("redirect_times"):
                rec.faults.append("redirect")
                return self._simple(rec, o.redirect_status, [("Location", o.redirect_to)], "redirect")
            if forced in ("503", "429", "500") and is_get:
                rec.faults.append("random:" + forced)
                extra = [] if forced == "500" else [("Retry-After", retry_after)]
                return self._simple(rec, int(forced), extra, "injected status")
            if o.statuses:
                status = o.statuses.pop(0)
                extra = [] if o.retry_after is None else [("Retry-After", str(o.retry_after))]
                rec.faults.append("status")
                return self._simple(rec, status, extra, "injected status")
            if o.deny_after_requests is not None and self._get_count > o.deny_after_requests:
                rec.faults.append("denied")
                rec.status = o.deny_status
                body = o.deny_body.encode()
                headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
                return _Plan(status=o.deny_status, headers=headers, record=rec, small_body=body)

            data = self._data
            total = len(data)
            honours_range = not (o.ignore_range or o.range_as_200 or o.chunked or o.no_length)
            advertises_range = not (o.ignore_range or o.chunked or o.no_length)
            validators: list[tuple[str, str]] = []
            if advertises_range:
                validators.append(("Accept-Ranges", "bytes"))
            if not o.no_etag:
                validators.append(("ETag", self._etag))
            if not o.no_last_modified:
                validators.append(("Last-Modified", _http_date(self._last_modified)))

            start, end, status = 0, total, 200
            content_range: str | None = None
            if range_header is not None and honours_range and forced == "range_200" and is_get:
                rec.faults.append("random:range_200")
                honours_range = False
            if range_header is not None and not honours_range:
                rec.faults.append("range_ignored")
            elif range_header is not None and (if_range is None or self._if_range_matches(if_range)):
                resolved = _parse_range(range_header, total)
                if resolved is False:
                    return self._simple(
                        rec,
                        416,
                        [*validators, ("Content-Range", f"bytes */{total}")],
                        "range not satisfiable",
                    )
                if isinstance(resolved, tuple):
                    start, end = resolved
                    status = 206
                    shift = 0
                    if is_get and o.wrong_content_range and self._take("wrong_content_range_times"):
                        shift = int(o.wrong_content_range)
                        rec.faults.append("wrong_content_range")
                    elif is_get and forced == "wrong_range":
                        shift = 1
                        rec.faults.append("random:wrong_range")
                    content_range = f"bytes {start + shift}-{end - 1 + shift}/{total}"

            body = memoryview(data)[start:end]
            body_len = end - start
            headers: list[tuple[str, str]] = [("Content-Type", o.content_type), *validators]
            if o.chunked:
                headers.append(("Transfer-Encoding", "chunked"))
            elif o.no_length:
                headers.append(("Connection", "close"))
            else:
                headers.append(("Content-Length", str(body_len)))
            if content_range is not None:
                headers.append(("Content-Range", content_range))
            md5_of: memoryview | None = None
            if o.content_md5 and status == 200:
                headers.append(("Content-MD5", self._md5_full))
            elif o.content_md5:
                md5_of = body  # hashed by the handler, outside the lock: big ranges must not serialize
            headers.extend(o.headers.items())
            rec.status = status
            rec.body_length = body_len
            plan = _Plan(status=status, headers=headers, record=rec, chunked=o.chunked, limit=body_len)
            plan.md5_of = md5_of
            if not is_get:
                return plan
            plan.body = body
            plan.rate = o.rate_limit or None

            if o.stall_after is not None and body_len > o.stall_after and self._take("stall_times"):
                plan.limit, plan.end_action = o.stall_after, "stall"
                rec.faults.append("stall")
            elif o.drop_after is not None and body_len > o.drop_after and self._take("drop_times"):
                plan.limit, plan.end_action = o.drop_after, "rst" if o.drop_rst else "close"
                rec.faults.append("drop")
            elif o.short_body > 0 and body_len > 0 and self._take("short_body_times"):
                plan.limit, plan.end_action = max(0, body_len - o.short_body), "close"
                rec.faults.append("short_body")
            framed_by_length = not (o.chunked or o.no_length)
            if (
                o.extra_bytes > 0
                and framed_by_length
                and plan.end_action == "none"
                and self._take("extra_bytes_times")
            ):
                plan.extra = o.extra_bytes
                rec.faults.append("extra_bytes")
            if (
                o.corrupt_offset is not None
                and start <= o.corrupt_offset < end
                and self._take("corrupt_times")
            ):
                plan.corrupt_rel = o.corrupt_offset - start
                rec.faults.append("corrupt")
            if o.first_byte_delay > 0 and body_len > 0 and self._take("delay_times"):
                plan.delay = o.first_byte_delay
                rec.faults.append("delay")
            if forced is not None and plan.end_action == "none" and not plan.extra:
                self._force(plan, forced, body_len, framed_by_length)
            return plan

    @staticmethod
    def _force(plan: _Plan, kind: str, body_len: int, framed_by_length: bool) -> None:
        """Apply a random fault to a response with no other fault, if it can apply."""
        applied = True
        if kind in ("drop", "reset", "stall") and body_len > 1:
            plan.limit = body_len // 2
            plan.end_action = {"drop": "close", "reset": "rst", "stall": "stall"}[kind]
        elif kind == "short" and body_len > 0:
            plan.limit, plan.end_action = body_len - 1, "close"
        elif kind == "extra" and framed_by_length:
            plan.extra = 64
        elif kind == "corrupt" and body_len > 0 and plan.corrupt_rel is None:
            plan.corrupt_rel = body_len // 2
        else:
            applied = False
        if applied:
            plan.record.faults.append("random:" + kind)


class _Handler(BaseHTTPRequestHandler):
    """Serves registered resources; all decisions live in :meth:`Resource._plan`."""

    protocol_version = "HTTP/1.1"
    # Small header + body writes must not wait for delayed ACKs (40 ms per keep-alive request otherwise).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: test output should not be flooded with access logs."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def _serve(self, method: str) -> None:
        owner = self.server.owner
        received = owner._begin_request()
        record: RequestRecord | None = None
        try:
            record = self._answer(method, owner)
        finally:
            owner._end_request(record, received)

    def _answer(self, method: str, owner: FaultServer) -> RequestRecord | None:
        path = unquote(urlsplit(self.path).path)
        resource = owner._lookup(path)
        conn_id = owner._connection_id(self.connection)
        if resource is None:
            body = b"404 not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method == "GET":
                self.wfile.write(body)
            return None
        forced = owner._draw_fault() if method == "GET" else None
        retry_after = owner.random_faults.retry_after if owner.random_faults else "0"
        plan = resource._plan(
            method, dict(self.headers.items()), conn_id, forced, retry_after, self.client_address[1]
        )
        if forced is not None and "random:" + forced in plan.record.faults:
            owner._count_fault(forced)
        if plan.md5_of is not None:
            plan.headers.append(("Content-MD5", _md5_b64(plan.md5_of)))
        self.send_response(plan.status)
        for name, value in plan.headers:
            self.send_header(name, value)
        self.end_headers()
        if method == "HEAD":
            return plan.record
        if plan.body is None:
            if plan.small_body:
                self.wfile.write(plan.small_body)
            return plan.record
        self._send_body(resource, plan)
        return plan.record

    def _send_body(self, resource: Resource, plan: _Plan) -> None:
        """Write the (possibly faulty) body from memoryview slices, throttled if asked."""
        stop = self.server.owner._stop_event
        sock = self.connection
        assert plan.body is not None
        if plan.delay and stop.wait(plan.delay):
            self._abort()
            return
        chunk = CHUNK_SIZE
        if plan.rate:
            chunk = max(1, min(CHUNK_SIZE, int(plan.rate / _RATE_STEPS_PER_SECOND)))
        body, limit, corrupt_rel = plan.body, plan.limit, plan.corrupt_rel
        t0 = time.monotonic()
        sent = 0
        while sent < limit:
            n = min(chunk, limit - sent)
            piece: memoryview | bytearray = body[sent : sent + n]
            if corrupt_rel is not None and sent <= corrupt_rel < sent + n:
                piece = bytearray(piece)
                piece[corrupt_rel - sent] ^= 0xFF
            if plan.rate:
                # Absolute schedule: byte k may leave only at t0 + k/rate, so the last byte lands at
                # body/rate and sleep jitter never accumulates.
                wait = t0 + (sent + n) / plan.rate - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    self._abort()
                    return
            if stop.is_set():
                self._abort()
                return
            # Counted before sending so a client that already holds the bytes never sees stale stats;
            # rolled back if the kernel refuses them (the client cannot have received the whole piece).
            resource._add_sent(plan.record, n)
            try:
                if plan.chunked:
                    sock.sendall(b"%x\r\n" % n)
                    sock.sendall(piece)
                    sock.sendall(b"\r\n")
                else:
                    sock.sendall(piece)
            except OSError:
                resource._add_sent(plan.record, -n)
                raise
            sent += n

        if plan.end_action == "stall":
            stop.wait()
            self._abort()
        elif plan.end_action in ("close", "rst"):
            self._abort(rst=plan.end_action == "rst")
        else:
            if plan.chunked:
                sock.sendall(b"0\r\n\r\n")
            if plan.extra:
                reps = plan.extra // len(_GARBAGE) + 1
                sock.sendall((_GARBAGE * reps)[: plan.extra])

    def _abort(self, rst: bool = False) -> None:
        """Close the connection now, mid-response: FIN (shutdown) or, with ``rst``, a TCP reset."""
        self.close_connection = True
        try:
            if rst:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _HTTPServer(ThreadingHTTPServer):
    """Threading server that tracks its connections and threads so stop() can wake and reap them."""

    daemon_threads = True
    block_on_close = False  # FaultServer.stop() joins with a timeout instead of possibly forever
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, owner: FaultServer) -> None:
        self.owner = owner
        self.address_family = socket.AF_INET6 if ":" in owner.host else socket.AF_INET
        super().__init__((owner.host, 0), _Handler)
        if owner.tls is not None:
            # Handshakes happen lazily, on the first read in the connection's own thread.
            self.socket = owner.tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), which can do a slow reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.owner.host
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.owner._register_connection(request):
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._run, args=(request, client_address), daemon=True, name="faultserver-conn"
        )
        self.owner._add_thread(thread)
        thread.start()

    def _run(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self.owner._discard_thread(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        self.owner._unregister_connection(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Socket errors are expected (clients and faults hang up); anything else is a server bug."""
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, OSError):
            self.owner._record_error(exc)


class FaultServer:
    """Range-capable HTTP/1.1 server on 127.0.0.1 with per-resource fault injection.

    See the module docstring for the options accepted by :meth:`add`.
    """

    def __init__(
        self,
        tls: ssl.SSLContext | None = None,
        random_faults: RandomFaults | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.tls = tls
        self.random_faults = random_faults
        self._rng = random.Random(random_faults.seed if random_faults else 0)
        self._random_fired: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._resources: dict[str, Resource] = {}
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._open: dict[socket.socket, int] = {}
        self._threads: set[threading.Thread] = set()
        self._connections_accepted = 0
        self._errors: list[BaseException] = []
        self._stopping = False
        self._busy = 0  # requests being answered now (read, and their response not sent or cut off yet)
        self._peak_busy = 0

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FaultServer:
        """Bind an ephemeral port and serve in a daemon thread; returns self for chaining."""
        if self._httpd is not None:
            raise RuntimeError("FaultServer already started (servers are single-use)")
        self._httpd = _HTTPServer(self)
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="faultserver"
        )
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake stalled/delayed handlers, close every connection and reap threads.

        Idempotent.  Never blocks for long: handlers wait on an event that is set here, and sockets are
        shut down so threads blocked in recv()/send() return immediately.
        """
        with self._lock:
            if self._httpd is None or self._stopping:
                return
            self._stopping = True
        self._stop_event.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(_STOP_JOIN_TIMEOUT)
        with self._lock:
            sockets = list(self._open)
            threads = list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + _STOP_JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftovers = list(self._open)
            self._open.clear()
        for sock in leftovers:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- resources
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FaultServer not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``http://[::1]:PORT`` on IPv6; no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls is not None else 'http'}://{host}:{self.port}"

    def url(self, path: str) -> str:
        """Full URL of a path (percent-encoded as needed)."""
        return self.base_url + quote(_norm(path))

    def add(self, path: str, data: bytes, **options: Any) -> str:
        """Register (or replace) a resource at ``path`` and return its full URL.

        ``options`` are :class:`FaultOptions` fields; unknown names raise ``TypeError``.
        """
        path = _norm(path)
        opts = FaultOptions(**options)
        opts.statuses = list(opts.statuses)
        opts.headers = dict(opts.headers)
        url = self.url(path)
        res = Resource(path, url, data, opts)
        with self._lock:
            self._resources[path] = res
        return url

    def resource(self, path: str) -> Resource:
        """The registered resource (for stats and on-the-fly tweaks); accepts a path or a full URL."""
        if "://" in path:
            path = unquote(urlsplit(path).path)
        with self._lock:
            return self._resources[_norm(path)]

    # ----------------------------------------------------------------- server-level stats
    @property
    def connections_accepted(self) -> int:
        with self._lock:
            return self._connections_accepted

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    @property
    def peak_busy(self) -> int:
        """The most requests answered at once: connections busy with a request, as nginx's limit_conn
        counts them (a kept-alive connection waiting for the next request does not count)."""
        with self._lock:
            return self._peak_busy

    @property
    def all_requests(self) -> list[RequestRecord]:
        """Every resource's request records, in the order they were received."""
        with self._lock:
            resources = list(self._resources.values())
        return sorted((r for res in resources for r in res.requests), key=lambda r: r.received)

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected (non-socket) exceptions raised by handlers: server bugs, should be empty."""
        with self._lock:
            return list(self._errors)

    @property
    def random_fired(self) -> dict[str, int]:
        """How many random faults fired, per kind."""
        with self._lock:
            return dict(self._random_fired)

    # ----------------------------------------------------------------- internals used by the handler
    def _draw_fault(self) -> str | None:
        rf = self.random_faults
        if rf is None or not rf.kinds:
            return None
        with self._lock:
            if self._rng.random() >= rf.rate:
                return None
            return self._rng.choice(rf.kinds)

    def _begin_request(self) -> float:
        with self._lock:
            self._busy += 1
            self._peak_busy = max(self._peak_busy, self._busy)
        return time.monotonic()

    def _end_request(self, record: RequestRecord | None, received: float) -> None:
        with self._lock:
            self._busy -= 1
            if record is not None:
                record.received, record.answered = received, time.monotonic()

    def _count_fault(self, kind: str) -> None:
        with self._lock:
            self._random_fired[kind] += 1

    def _lookup(self, path: str) -> Resource | None:
        with self._lock:
            return self._resources.get(path)

    def _register_connection(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stopping:
                return False
            self._connections_accepted += 1
            self._open[sock] = self._connections_accepted
            return True

    def _unregister_connection(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.pop(sock, None)

    def _connection_id(self, sock: socket.socket) -> int:
        with self._lock:
            return self._open.get(sock, 0)

    def _add_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.add(thread)

    def _discard_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.discard(thread)

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)


def _norm(path: str) -> str:
    return path if path.startswith("/") else "/" + path
