"""An HTTP directory listing as a tree: the autoindex pages of nginx, Apache and lighttpd, and Python's
http.server, read with html.parser and walked breadth first.

A page is someone else's HTML, so only links that stay below the page's own path are followed: `../`,
absolute links elsewhere, other hosts and Apache's sort links (`?C=M;O=A`) are dropped. A link ending in
`/` is a subdirectory, anything else a file, named by its percent-decoded remainder and handed on as it
is: a name that would escape the target directory is refused later, by `listing.local_path`, where it is
seen and counted.

Size and modification time come from the page when it shows them (the text between a link and the next
one holds them in all three servers' formats); an approximate size (`1.2K`) is no size. A page that shows
neither (http.server) costs no request per file here: whoever needs a file's facts to compare it with a
local copy asks `head` for them, for that file only, so a first mirror of a tree of thousands of new files
sends no HEAD at all and a later one sends one per file already present (see mirror/compare.py).
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_tz
from html.parser import HTMLParser
from urllib.parse import quote, unquote, urljoin, urlsplit

from getm_tui.engine import retry
from getm_tui.engine.errors import DownloadError, UsageError
from getm_tui.engine.sources import http
from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.http import HTTPSource
from getm_tui.engine.sources.http_session import HTTPSettings, Session, make_session
from getm_tui.engine.sources.listing import RemoteEntry
from getm_tui.engine.urls import redact

log = logging.getLogger(__name__)

PAGE_LIMIT = 64 * 1024 * 1024  # bytes of one index page read at most
MAX_DEPTH = 64  # directory levels walked at most: a server's symlink loop must not walk forever
_RETRIES = 3

# The date and size after a link, as each server writes them; the time is read as UTC (nginx's default;
# what matters is that the same page text always gives the same time).
_SECONDS = r"(?::\d{2})?"
# nginx and Apache's <pre> form, Apache's table, lighttpd
_DATES = (
    (re.compile(rf"(\d{{2}}-[A-Za-z]{{3}}-\d{{4}} \d{{2}}:\d{{2}}{_SECONDS})"), "%d-%b-%Y %H:%M"),
    (re.compile(rf"(\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}{_SECONDS})"), "%Y-%m-%d %H:%M"),
    (re.compile(rf"(\d{{4}}-[A-Za-z]{{3}}-\d{{2}} \d{{2}}:\d{{2}}{_SECONDS})"), "%Y-%b-%d %H:%M"),
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)")


class _Links(HTMLParser):
    """Each `<a href>` of a page, with the text that follows it up to the next link."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[list[str]] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        href = dict(attrs).get("href")
        self._open = href is not None
        if href is not None:
            self.links.append([href, ""])

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open = False

    def handle_data(self, data: str) -> None:
        if self.links and not self._open:
            self.links[-1][1] += data


@dataclass(frozen=True)
class Link:
    """One child of a listed directory: its name (percent-decoded), URL, and what the page says of it."""

    name: str
    url: str
    directory: bool
    size: int | None
    modified: float | None


def parse_page(html: str, page_url: str) -> list[Link]:
    """The children of the directory `page_url` that its page links to, in page order, once each."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    base = urlsplit(page_url)
    out: list[Link] = []
    seen: set[str] = set()
    for href, after in parser.links:
        if "?" in href or href.startswith("#"):
            continue  # Apache's sort links, anchors
        target = urlsplit(urljoin(page_url, href))
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            continue
        if not target.path.startswith(base.path) or len(target.path) == len(base.path):
            continue  # the parent, the page itself, or elsewhere on the host
        rest = target.path[len(base.path) :]
        directory = rest.endswith("/")
        name = unquote(rest[:-1] if directory else rest, errors="surrogateescape")
        if directory and (not name or "/" in name or name in (".", "..")):
            continue  # not a direct child we can walk into
        if name in seen:
            continue
        seen.add(name)
        url = f"{page_url}{quote(name, safe='', errors='surrogateescape')}{'/' if directory else ''}"
        modified, size = _facts(after)
        out.append(Link(name, url, directory, None if directory else size, modified))
    return out


def _facts(text: str) -> tuple[float | None, int | None]:
    """(modification time, exact size) from the text after a link; None for what it does not show."""
    for pattern, form in _DATES:
        m = pattern.search(text)
        if m is None:
            continue
        when = _parse_time(m.group(1), form)
        size = _SIZE.match(text[m.end() :].replace("\xa0", " "))
        exact = int(size.group(1)) if size and not size.group(2) and size.group(1).isdigit() else None
        return when, exact
    return None, None


def _parse_time(text: str, minutes: str) -> float | None:
    for form in (minutes, minutes + ":%S"):
        try:
            return float(calendar.timegm(time.strptime(text, form)))
        except ValueError:
            continue
    return None


def _read_page(session: Session, url: str, settings: HTTPSettings) -> str:
    """The HTML of the directory page at `url`; UsageError when the answer is not an HTML page."""

    def fetch() -> tuple[str, bytes]:
        resp = http.get(session, url, settings)
        kind = resp.headers.get("Content-Type", "")
        body = resp.raw.read(PAGE_LIMIT + 1) if "html" in kind.lower() else b""
        http.done_with(resp) if len(body) <= PAGE_LIMIT else resp.close()
        return kind, body

    kind, body = retry.with_retries(fetch, _RETRIES, retry.BASE_DELAY, None)
    if "html" not in kind.lower():
        raise UsageError(f"{redact(url)} is not a directory listing (its answer is {kind or 'not HTML'})")
    if len(body) > PAGE_LIMIT:
        raise DownloadError(f"the listing at {redact(url)} is larger than {PAGE_LIMIT} bytes")
    charset = re.search(r"charset=([\w.-]+)", kind)
    try:
        return body.decode(charset.group(1) if charset else "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def listing(url: str, settings: HTTPSettings) -> Iterator[RemoteEntry]:
    """Every file below the directory page `url` (it must end in `/`), breadth first, a page at a time."""
    if not urlsplit(url).path.endswith("/"):
        raise UsageError(f"{redact(url)} names one file: a directory listing ends with /")
    session = make_session(settings)
    try:
        pending: deque[tuple[str, str, int]] = deque([(url, "", 0)])
        while pending:
            page_url, prefix, depth = pending.popleft()
            for link in parse_page(_read_page(session, page_url, settings), page_url):
                if link.directory:
                    if depth + 1 <= MAX_DEPTH:
                        pending.append((link.url, f"{prefix}{link.name}/", depth + 1))
                    continue
                yield RemoteEntry(
                    path=prefix + link.name, url=link.url, size=link.size, modified=link.modified
                )
    finally:
        session.close()


def head(session: Session, url: str, settings: HTTPSettings) -> tuple[int | None, float | None, str | None]:
    """(size, modification time, ETag) of one file from a HEAD, for a page that did not show them."""
    resp = retry.with_retries(
        lambda: http.get(session, url, settings, method="HEAD"), _RETRIES, retry.BASE_DELAY, None
    )
    h = resp.headers
    resp.raw.read()  # nothing: read to its end so that the connection serves the next HEAD
    http.done_with(resp)
    length = h.get("Content-Length", "")
    return (int(length) if length.isdigit() else None), http_time(h.get("Last-Modified")), h.get("ETag")


def http_time(value: str | None) -> float | None:
    """Seconds since the epoch from an HTTP date (Last-Modified), or None."""
    stamp = parsedate_tz(value or "")
    return float(calendar.timegm(stamp[:9]) - (stamp[9] or 0)) if stamp else None


class HTTPTree(HTTPSource):
    """http and https as a Source: a URL's bytes (http.py), and the tree below a directory page."""

    def listing(self, url: str, settings: HTTPSettings, access: Access) -> Iterator[RemoteEntry]:
        return listing(url, settings)


SOURCE = HTTPTree()
