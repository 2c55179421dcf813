"""A loopback Google Cloud Storage for tests: gcp-storage-emulator's server on 127.0.0.1, in memory.

It speaks the JSON API that the gs:// source uses (object metadata with crc32c and md5Hash, media
downloads with ranges, listings by prefix) and needs no credentials; STORAGE_EMULATOR_HOST points the
source at it. What it does not do: check credentials, or split a listing into pages (it answers every
prefix in one page): GCS paging is tested against tests/helpers/gcspages.py, S3's against moto.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import requests
from gcp_storage_emulator.server import create_server


@dataclass
class GCSServer:
    """A running emulator with one empty bucket."""

    endpoint: str
    bucket: str

    def put_object(self, name: str, data: bytes) -> str:
        """Upload `name` (the emulator computes its crc32c and md5Hash); returns its gs:// URL."""
        resp = requests.post(
            f"{self.endpoint}/upload/storage/v1/b/{self.bucket}/o",
            params={"uploadType": "media", "name": name},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
        resp.raise_for_status()
        return f"gs://{self.bucket}/{name}"

    def metadata(self, name: str) -> dict[str, str]:
        resp = requests.get(
            f"{self.endpoint}/storage/v1/b/{self.bucket}/o/{quote(name, safe='')}", timeout=30
        )
        resp.raise_for_status()
        meta: dict[str, str] = resp.json()
        return meta


@contextlib.contextmanager
def running_gcs() -> Iterator[GCSServer]:
    """The emulator on a free loopback port, with STORAGE_EMULATOR_HOST set to it while it runs."""
    quiet = logging.getLogger("gcp_storage_emulator")
    old_level = quiet.level
    quiet.setLevel(logging.WARNING)
    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    try:
        host, port = server._api._httpd.server_address[:2]
        endpoint = f"http://{host}:{port}"
        bucket = f"getm-test-{uuid.uuid4().hex[:12]}"
        requests.post(
            f"{endpoint}/storage/v1/b", params={"project": "test"}, json={"name": bucket}, timeout=30
        ).raise_for_status()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORAGE_EMULATOR_HOST", endpoint)
            mp.setenv("NO_PROXY", "127.0.0.1,localhost")
            yield GCSServer(endpoint, bucket)
    finally:
        server.stop()
        quiet.setLevel(old_level)
