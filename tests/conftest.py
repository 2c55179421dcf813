"""Shared fixtures: loopback servers started per test (fault server) or per module (moto S3)."""

from tests.helpers.faultserver import fault_server  # noqa: F401
from tests.helpers.s3server import s3_server  # noqa: F401
