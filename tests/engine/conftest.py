"""Fixtures of the engine's tests: a moto S3 server, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.s3server import S3Server, running_s3


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with running_s3() as server:
        yield server
