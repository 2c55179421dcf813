"""A loopback S3 for tests: moto's threaded server on 127.0.0.1, reached through presigned URLs.

Tests that need real S3 responses (ETag shapes, x-amz-* headers, range answers, listings) use the
`s3_server` fixture, which tests/conftest.py makes known to every test module; s3:// URLs reach it through
AWS_ENDPOINT_URL. It is module-scoped: one server per
test module, so only that module's tests see the dummy AWS
environment, which is restored when the module finishes.

Note that moto does not check presigned-URL signatures (a tampered signature is served too), so tests
here cannot show that a real S3 refuses a request; they only show what a successful answer looks like.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

# Dummy credentials and no shared config, so nothing on the machine (a real profile, a session token)
# leaks into the signing and no real account can be touched.
_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    # No instance-metadata lookup (a second of timeouts off EC2) when a test takes credentials away.
    "AWS_EC2_METADATA_DISABLED": "true",
}
_AWS_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL")
URL_EXPIRES = 3600  # seconds a presigned GET URL stays valid


@dataclass
class S3Server:
    """A running moto S3 with one empty bucket, and helpers that upload and hand back GET URLs."""

    endpoint: str
    bucket: str
    client: Any  # botocore S3 client bound to `endpoint`

    def presigned_get(self, key: str) -> str:
        """A SigV4 query-string signed GET URL for `key`, as a user would paste it."""
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=URL_EXPIRES
        )
        return url

    def put_object(self, key: str, data: bytes) -> str:
        """Upload in one PUT (ETag = md5 of the data); returns a presigned GET URL."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return self.presigned_get(key)

    def put_multipart(
        self, key: str, data: bytes, part_size: int, algorithm: str | None = None, kind: str | None = None
    ) -> str:
        """Upload as a multipart upload with `part_size` parts (ETag = "md5-of-md5s-N"); returns a GET URL.
        With `algorithm` (CRC32, CRC64NVME, ...) the object gets that additional checksum, of ChecksumType
        `kind` (COMPOSITE or FULL_OBJECT).

        moto enforces S3's 5 MiB minimum for every part but the last, like the real service.
        """
        create: dict[str, str] = {"ChecksumAlgorithm": algorithm} if algorithm else {}
        if kind:
            create["ChecksumType"] = kind
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **create)["UploadId"]
        parts = []
        try:
            for number, start in enumerate(range(0, max(len(data), 1), part_size), start=1):
                resp = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data[start : start + part_size],
                    **({"ChecksumAlgorithm": algorithm} if algorithm else {}),
                )
                part = {"ETag": resp["ETag"], "PartNumber": number}
                if algorithm:
                    part[f"Checksum{algorithm}"] = resp[f"Checksum{algorithm}"]
                parts.append(part)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return self.presigned_get(key)


@contextlib.contextmanager
def running_s3() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 (free port) with a fresh bucket, under dummy credentials; the
    environment is restored and the bucket emptied when it ends."""
    werkzeug_log = logging.getLogger("werkzeug")
    old_level = werkzeug_log.level
    with pytest.MonkeyPatch.context() as mp:
        for name, value in _AWS_ENV.items():
            mp.setenv(name, value)
        for name in _AWS_UNSET:
            mp.delenv(name, raising=False)
        # Loopback must never go through a proxy, whatever the environment says.
        for name in ("NO_PROXY", "no_proxy"):
            mp.setenv(name, ",".join(filter(None, [os.environ.get(name, ""), "127.0.0.1", "localhost"])))
        werkzeug_log.setLevel(logging.WARNING)  # one log line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            mp.setenv("AWS_ENDPOINT_URL", endpoint)  # where s3:// URLs go
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint,
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            )
            # moto's backends are process-wide; a unique bucket keeps other users of moto out of our way.
            bucket = f"getm-test-{uuid.uuid4().hex[:12]}"
            client.create_bucket(Bucket=bucket)
            yield S3Server(endpoint=endpoint, bucket=bucket, client=client)
            # moto keeps objects in memory for the life of the process: free them.
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents", []):
                    client.delete_object(Bucket=bucket, Key=obj["Key"])
            client.delete_bucket(Bucket=bucket)
        finally:
            server.stop()
            werkzeug_log.setLevel(old_level)
