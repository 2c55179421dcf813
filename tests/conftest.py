"""Fixtures every test folder may use: the loopback servers (a fault-injecting HTTP server per test, a
PostgreSQL per session with a database per test, a moto S3 and a GCS emulator per test module) and the
engine's after-test hygiene check."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.helpers.engine_util import no_leftovers
from tests.helpers.faultserver import FaultServer
from tests.helpers.ftpserver import FTPTestServer
from tests.helpers.gcsserver import GCSServer, running_gcs
from tests.helpers.postgres import PostgresServer
from tests.helpers.s3server import S3Server, running_s3
from tests.helpers.sftpserver import SFTPTestServer


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer`, stopped (promptly, even with stalled handlers) after the test."""
    server = FaultServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def engine_hygiene(fault_server: FaultServer) -> Iterator[None]:
    """After the test: nothing of ours in /dev/shm, no worker process left, no server-side bug."""
    with no_leftovers():
        yield
    assert fault_server.errors == []


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The distribution's PostgreSQL, run unprivileged in a temporary directory for the whole session."""
    server = PostgresServer().init().start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A libpq URL (with a password) for an empty database of this test's own."""
    if postgres_server.process is None or postgres_server.process.poll() is not None:
        postgres_server.start()  # a test that stopped the server may have failed before starting it again
    return postgres_server.create_database(f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 with a fresh bucket, AWS_ENDPOINT_URL pointing at it and dummy credentials, per module."""
    with running_s3() as server:
        yield server


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[GCSServer]:
    """gcp-storage-emulator with a fresh bucket, STORAGE_EMULATOR_HOST pointing at it, per module."""
    with running_gcs() as server:
        yield server


@pytest.fixture
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FTPTestServer]:
    """pyftpdlib on 127.0.0.1 serving an empty root (anonymous, and USER with PASSWORD), per test."""
    server = FTPTestServer(str(tmp_path_factory.mktemp("ftp-root"))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(CA file a client trusts, server certificate and key in one PEM file for 127.0.0.1), from trustme."""
    import trustme

    where = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(where / "server.pem")
    )
    return str(where / "ca.pem"), str(where / "server.pem")


@pytest.fixture(params=["explicit", "implicit"])
def ftps_server(request: pytest.FixtureRequest, tmp_path_factory, tls_ca) -> Iterator[FTPTestServer]:
    """pyftpdlib with TLS: explicit (AUTH TLS on ftp://) and implicit (ftps://), one test each."""
    server = FTPTestServer(str(tmp_path_factory.mktemp("ftps-root")), request.param, tls_ca[1]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SFTPTestServer]:
    """asyncssh's SFTP server on 127.0.0.1 (USER by PASSWORD or by its client key), per test."""
    server = SFTPTestServer(str(tmp_path_factory.mktemp("sftp-root"))).start()
    try:
        yield server
    finally:
        server.stop()
