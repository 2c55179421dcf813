"""Listings that come in pages: the lister asks for a page size and follows every token to the end.

GCS against a stand-in that pages as Google does (tests/helpers/gcspages.py; the emulator does not page);
S3 against moto, which honours max-keys and continuation tokens. The page size is made small here so a
handful of keys spans several pages.
"""

from __future__ import annotations

import pytest

from getm_tui.engine import HTTPSettings
from getm_tui.engine.sources import bucket, gcs, s3
from getm_tui.engine.sources.base import Access
from tests.helpers.gcspages import running_pages, token_for
from tests.helpers.s3server import S3Server

NAMES = [f"p/{c}/{i}.bin" for c in "ab" for i in range(4)]  # 8 under p/, in the store's order


def test_gcs_listing_asks_a_page_size_and_follows_every_token(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = {name: name.encode() * 3 for name in NAMES} | {"q/other.bin": b"not listed"}
    monkeypatch.setattr(bucket, "PAGE_SIZE", 3)
    with running_pages("pages-bucket", objects) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        entries = list(gcs.SOURCE.listing("gs://pages-bucket/p/", HTTPSettings(), Access()))
    assert [e.url for e in entries] == [f"gs://pages-bucket/{n}" for n in NAMES]
    assert [e.path for e in entries] == [n.removeprefix("p/") for n in NAMES]
    assert all(
        e.size == len(objects[n]) and len(e.checksums) == 2 for e, n in zip(entries, NAMES, strict=True)
    )
    # Three pages of at most three, each asked with the page size; each token handed back as it was given.
    assert [q.get("maxResults") for q in server.queries] == ["3", "3", "3"]
    assert [q.get("pageToken") for q in server.queries] == [None, token_for(3), token_for(6)]
    assert all(q["prefix"] == "p/" for q in server.queries)


@pytest.mark.slow
def test_s3_listing_asks_max_keys_and_follows_continuation_tokens(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [*NAMES, "q/other.bin"]:
        s3_server.put_object(name, name.encode())
    monkeypatch.setattr(bucket, "PAGE_SIZE", 3)
    asked: list[str] = []
    real = s3._xml

    def spy(session: object, url: str, *rest: object) -> object:
        asked.append(url)
        return real(session, url, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(s3, "_xml", spy)
    entries = list(s3.SOURCE.listing(f"s3://{s3_server.bucket}/p/", HTTPSettings(), Access()))
    assert [e.url for e in entries] == [f"s3://{s3_server.bucket}/{n}" for n in NAMES]
    assert len(asked) == 3 and all("max-keys=3" in url for url in asked)
    assert "continuation-token" not in asked[0]
    assert all("continuation-token=" in url for url in asked[1:])
