"""A loopback stand-in for the GCS JSON API's objects.list that pages as Google does (maxResults,
pageToken, nextPageToken), which gcp-storage-emulator does not: it answers every prefix in one page.

Its tokens are opaque strings with the characters a URL must encode (`+`, `/`, `=`), and every request's
query is recorded, so a test sees the page size asked for and that each token came back unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import crc32c

DEFAULT_PAGE = 1000  # what GCS answers with when no maxResults is given


def token_for(index: int) -> str:
    """An opaque page token that needs URL-encoding ('+', '/', '=' in it)."""
    return base64.b64encode(b"\xfb\xff" + str(index).encode()).decode() + "=/+"


@dataclass
class GCSPages:
    """The objects of one bucket, by name, and the queries its listings were asked with."""

    bucket: str
    objects: dict[str, bytes]
    url: str = ""
    queries: list[dict[str, str]] = field(default_factory=list)

    def page(self, query: dict[str, str]) -> dict[str, object]:
        names = sorted(n for n in self.objects if n.startswith(query.get("prefix", "")))
        start = 0
        if "pageToken" in query:
            start = next(i for i in range(len(names) + 1) if token_for(i) == query["pageToken"])
        size = int(query.get("maxResults", DEFAULT_PAGE))
        items = [
            {
                "name": name,
                "size": str(len(self.objects[name])),
                "md5Hash": base64.b64encode(hashlib.md5(self.objects[name]).digest()).decode(),
                "crc32c": base64.b64encode(crc32c.crc32c(self.objects[name]).to_bytes(4, "big")).decode(),
            }
            for name in names[start : start + size]
        ]
        out: dict[str, object] = {"kind": "storage#objects", "items": items}
        if start + size < len(names):
            out["nextPageToken"] = token_for(start + size)
        return out


@contextlib.contextmanager
def running_pages(bucket: str, objects: dict[str, bytes]) -> Iterator[GCSPages]:
    pages = GCSPages(bucket, objects)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if unquote(parts.path) != f"/storage/v1/b/{pages.bucket}/o":
                self.send_error(404)
                return
            pages.queries.append(query)
            body = json.dumps(pages.page(query)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pages.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield pages
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
