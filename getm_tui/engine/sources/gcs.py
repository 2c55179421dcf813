"""The gs:// source: objects of a Google Cloud Storage bucket, through its JSON API over HTTP.

google-auth, imported on the first gs:// URL, finds the credentials (application default credentials, a
service-account file named by GOOGLE_APPLICATION_CREDENTIALS, the metadata server); each request carries
a bearer token that is refreshed before it expires (BearerSigner). STORAGE_EMULATOR_HOST points every
request at an emulator, which needs no credentials.

The object's metadata is read first: its size, crc32c and md5Hash (known before the first byte, so the
download ends verified or failed) and its generation, which the media URL then names: every range of a
download, and of a resumed one, comes from the same bytes, or fails as a changed object.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from getm_tui.engine.checksum import Expected
from getm_tui.engine.errors import DownloadError, HTTPStatusError
from getm_tui.engine.files import sanitize_name
from getm_tui.engine.sources import bucket as bucket_urls
from getm_tui.engine.sources import http
from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.http import Probe
from getm_tui.engine.sources.http_session import HTTPSettings, Reply, Session, make_session
from getm_tui.engine.sources.listing import RemoteEntry, relative_to

log = logging.getLogger(__name__)

PUBLIC_ENDPOINT = "https://storage.googleapis.com"
_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_only"]
_HINT = "check GOOGLE_APPLICATION_CREDENTIALS, or --anonymous for a public bucket"
_LIST_FIELDS = "items(name,size,md5Hash,crc32c,updated,etag,generation),nextPageToken"


def endpoint() -> str:
    """The JSON API's root: STORAGE_EMULATOR_HOST's (with or without a scheme), else Google's."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "").strip().rstrip("/")
    if not emulator:
        return PUBLIC_ENDPOINT
    return emulator if "://" in emulator else f"http://{emulator}"


class BearerSigner:
    """An OAuth2 bearer token from google-auth's credentials, refreshed when it is about to expire.

    Pickled (into a fetch task) it carries the current token only, never a refresh token or a key; the
    repr shows nothing of it."""

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials
        self._token: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "BearerSigner()"

    def _current(self) -> str:
        if self._credentials is None:
            return self._token or ""
        with self._lock:
            if not self._credentials.valid:
                import google.auth.transport.requests

                self._credentials.refresh(google.auth.transport.requests.Request())
            token: str = self._credentials.token
        return token

    def __getstate__(self) -> dict[str, Any]:
        return {"token": self._current()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._credentials = None
        self._token = state["token"]
        self._lock = threading.Lock()

    def sign(self, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._current()}"}


@dataclass(frozen=True)
class _Bucket:
    base: str
    signer: BearerSigner | None


_signers: dict[bool, BearerSigner | None] = {}
_signers_lock = threading.Lock()


def _bucket(access: Access) -> _Bucket:
    base = endpoint()
    if access.anonymous or base != PUBLIC_ENDPOINT:
        return _Bucket(base, None)
    with _signers_lock:
        if False not in _signers:
            _signers[False] = _default_signer()
        return _Bucket(base, _signers[False])


def _default_signer() -> BearerSigner | None:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _project = google.auth.default(scopes=_SCOPES)
    except DefaultCredentialsError:
        log.info("no Google credentials found: gs:// objects are read anonymously")
        return None
    return BearerSigner(credentials)


def _object_url(found: _Bucket, bucket: str, name: str) -> str:
    return f"{found.base}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"


class GCSSource(bucket_urls.OverHTTP):
    """gs:// URLs as a Source (see source.py)."""

    def probe(
        self, session: Session, url: str, settings: HTTPSettings, access: Access
    ) -> tuple[Probe, Reply]:
        bucket, name = bucket_urls.object_of(url)
        found = _bucket(access)
        meta = _json(session, _object_url(found, bucket, name), found, settings, url)
        query = {"alt": "media"}
        if meta.get("generation"):
            query["generation"] = str(meta["generation"])
        media = (
            f"{found.base}/download/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
            f"?{urlencode(query)}"
        )
        try:
            probe, resp = http.probe(session, media, settings, found.signer)
        except HTTPStatusError as e:
            raise bucket_urls.refusal(e, url, found.signer, _HINT) from None
        probe.filename = sanitize_name(name.rsplit("/", 1)[-1]) or probe.filename
        known = metadata_checksums(meta)
        probe.expected = [*known, *(e for e in probe.expected if (e.algorithm, e.value) not in _keys(known))]
        return probe, resp

    def listing(self, url: str, settings: HTTPSettings, access: Access) -> Iterator[RemoteEntry]:
        """objects.list, a page (bucket.PAGE_SIZE names) at a time, following nextPageToken, so a prefix
        of millions is never held at once."""
        bucket, prefix = bucket_urls.split_url(url)
        root = bucket_urls.listing_root(prefix)
        found = _bucket(access)
        session = make_session(settings)
        try:
            token: str | None = None
            while True:
                query = {"prefix": root, "fields": _LIST_FIELDS, "maxResults": str(bucket_urls.PAGE_SIZE)}
                if token:
                    query["pageToken"] = token
                page = _json(
                    session,
                    f"{found.base}/storage/v1/b/{quote(bucket, safe='')}/o?{urlencode(query)}",
                    found,
                    settings,
                    url,
                )
                for item in page.get("items") or []:
                    name = str(item.get("name", ""))
                    if name.endswith("/") and str(item.get("size")) == "0":
                        continue  # a "folder" placeholder, not a file
                    yield RemoteEntry(
                        path=relative_to(root, name),
                        url=f"gs://{bucket}/{name}",
                        size=int(item["size"]) if str(item.get("size", "")).isdigit() else None,
                        modified=_time(item.get("updated")),
                        etag=item.get("etag"),
                        checksums=tuple(metadata_checksums(item)),
                    )
                token = page.get("nextPageToken")
                if not token:
                    return
        finally:
            session.close()


SOURCE = GCSSource()


def metadata_checksums(meta: dict[str, Any]) -> list[Expected]:
    """crc32c and md5Hash of an object's metadata (base64; composite objects have no md5Hash)."""
    out: list[Expected] = []
    for field, algorithm in (("crc32c", "crc32c"), ("md5Hash", "md5")):
        value = meta.get(field)
        if not isinstance(value, str) or not value:
            continue
        found = bucket_urls.digest(value, algorithm, f"GCS {field}")
        if found is not None:
            out.append(found)
    return out


def _keys(expected: list[Expected]) -> set[tuple[str, str]]:
    return {(e.algorithm, e.value) for e in expected}


def _json(session: Session, url: str, found: _Bucket, settings: HTTPSettings, shown: str) -> dict[str, Any]:
    body = bucket_urls.read_small(session, url, settings, found.signer, shown, _HINT)
    try:
        value = json.loads(body)
    except ValueError:
        raise DownloadError(f"unreadable answer about {shown}") from None
    if not isinstance(value, dict):
        raise DownloadError(f"unreadable answer about {shown}")
    return value


def _time(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
