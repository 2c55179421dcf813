"""sftp:// against a real asyncssh server: password and key logins, parts over SSH connections of their
own, and the host key policies (a known host; an unknown host rejected, accepted, added; a changed key
always refused). The server records its sessions and the first offset read from each opened file.
"""

from __future__ import annotations

import logging
import os
import random

import asyncssh
import pytest

from getm_tui.engine import DownloadError, Options, download
from getm_tui.engine.sources.base import Access
from tests.helpers.engine_util import read
from tests.helpers.sftpserver import PASSWORD, SFTPTestServer

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
DATA = random.Random(9).randbytes(5 * MiB + 33)


def _options(tmp_path, known: str | None = None, **access) -> Options:
    known_hosts = tmp_path / "known_hosts"
    if known is not None:
        known_hosts.write_text(known)
    return Options(
        part_size=MiB, retries=1, retry_base=0.01, access=Access(sftp_known_hosts=str(known_hosts), **access)
    )


def test_password_login_small_file(sftp_server: SFTPTestServer, tmp_path) -> None:
    sftp_server.put("pub/note.txt", b"over ssh\n")
    opts = _options(tmp_path, sftp_server.known_hosts_line())
    result = download(sftp_server.url("pub/note.txt", password=PASSWORD), str(tmp_path), options=opts)
    assert read(result.path) == b"over ssh\n"
    assert result.probe is not None and result.probe.validator is not None  # the mtime


@pytest.mark.slow
def test_key_login_over_several_connections(sftp_server: SFTPTestServer, tmp_path) -> None:
    sftp_server.put("big.bin", DATA)
    key = sftp_server.write_client_key(str(tmp_path / "id_test"))
    opts = _options(tmp_path, sftp_server.known_hosts_line(), sftp_key_file=key)
    result = download(sftp_server.url("big.bin"), str(tmp_path / "out.bin"), concurrency=4, options=opts)
    assert read(result.path) == DATA and result.connections == 4
    # The probe's session, then one per part, each reading from its part's first byte.
    assert sftp_server.record.sessions == 7
    assert sorted(sftp_server.record.first_reads) == [i * MiB for i in range(6)]


def test_wrong_password_is_refused_without_showing_it(sftp_server: SFTPTestServer, tmp_path) -> None:
    sftp_server.put("f.bin", b"x")
    opts = _options(tmp_path, sftp_server.known_hosts_line())
    with pytest.raises(DownloadError) as e:
        download(sftp_server.url("f.bin", password="wrong-one"), str(tmp_path), options=opts)
    assert "login refused" in str(e.value) and "wrong-one" not in str(e.value)
    missing = _options(tmp_path, sftp_key_file=str(tmp_path / "no-key"))
    with pytest.raises(DownloadError, match="sftp_key_file .*no-key.* is not a file"):
        download(sftp_server.url("f.bin"), str(tmp_path), options=missing)


def test_password_from_the_config(sftp_server: SFTPTestServer, tmp_path) -> None:
    sftp_server.put("f.bin", b"configured")
    opts = _options(tmp_path, sftp_server.known_hosts_line(), sftp_password=PASSWORD)
    result = download(sftp_server.url("f.bin"), str(tmp_path), options=opts)
    assert read(result.path) == b"configured"


def test_unknown_host_rejected_by_default(sftp_server: SFTPTestServer, tmp_path) -> None:
    sftp_server.put("f.bin", b"x")
    with pytest.raises(DownloadError, match="not in known_hosts.*sftp_host_keys"):
        download(sftp_server.url("f.bin", password=PASSWORD), str(tmp_path), options=_options(tmp_path))
    assert not os.path.exists(tmp_path / "f.bin")


def test_unknown_host_accepted(sftp_server: SFTPTestServer, tmp_path, caplog) -> None:
    sftp_server.put("f.bin", b"accepted")
    opts = _options(tmp_path, "", sftp_host_keys="accept")
    with caplog.at_level(logging.WARNING, logger="getm_tui"):
        result = download(sftp_server.url("f.bin", password=PASSWORD), str(tmp_path), options=opts)
    assert read(result.path) == b"accepted"
    assert (tmp_path / "known_hosts").read_text() == ""  # accepted for this connection only
    assert any("accepting the unknown host key" in r.getMessage() for r in caplog.records)


def test_unknown_host_added_then_known(sftp_server: SFTPTestServer, tmp_path) -> None:
    sftp_server.put("f.bin", b"added")
    url = sftp_server.url("f.bin", password=PASSWORD)
    result = download(url, str(tmp_path / "a"), options=_options(tmp_path, sftp_host_keys="add"))
    assert read(result.path) == b"added"
    assert (tmp_path / "known_hosts").read_text() == sftp_server.known_hosts_line()
    again = download(url, str(tmp_path / "b"), options=_options(tmp_path))  # "reject" now finds it
    assert read(again.path) == b"added"


@pytest.mark.parametrize("policy", ["reject", "accept", "add"])
def test_changed_host_key_is_always_refused(sftp_server: SFTPTestServer, tmp_path, policy) -> None:
    sftp_server.put("f.bin", b"x")
    other = sftp_server.known_hosts_line(asyncssh.generate_private_key("ssh-ed25519"))
    opts = _options(tmp_path, other, sftp_host_keys=policy)
    with pytest.raises(DownloadError, match="host key .* is not the one known_hosts lists"):
        download(sftp_server.url("f.bin", password=PASSWORD), str(tmp_path), options=opts)
    assert (tmp_path / "known_hosts").read_text() == other


def test_missing_file_and_directory(sftp_server: SFTPTestServer, tmp_path) -> None:
    sftp_server.put("dir/a.txt", b"a")
    opts = _options(tmp_path, sftp_server.known_hosts_line())
    with pytest.raises(DownloadError, match="no such file"):
        download(sftp_server.url("dir/none.bin", password=PASSWORD), str(tmp_path), options=opts)
    with pytest.raises(DownloadError, match="directory"):
        download(sftp_server.url("dir", password=PASSWORD), str(tmp_path), options=opts)


def test_a_part_of_a_changed_file_is_refused(sftp_server: SFTPTestServer, tmp_path) -> None:
    """What If-Range does for HTTP: a part's connection stats the file again, and another mtime (or size)
    than the probe's is RemoteChanged, which starts the download over."""
    from getm_tui.engine.errors import RemoteChanged
    from getm_tui.engine.sources import source_for
    from getm_tui.engine.sources.http_session import make_session

    path = sftp_server.put("f.bin", DATA[:4096])
    url = sftp_server.url("f.bin", password=PASSWORD)
    opts = _options(tmp_path, sftp_server.known_hosts_line())
    session = make_session(opts.http)
    probe, reply = source_for(url).probe(session, url, opts.http, opts.access)
    reply.close()
    assert probe.transport is not None and probe.size == 4096 and probe.ranges
    part = probe.transport.open(1000, 2000, opts.http)
    buffer = memoryview(bytearray(4096))
    got = part.raw.readinto(buffer)
    part.close()
    assert bytes(buffer[:got]) == DATA[1000 : 1000 + got] and 0 < got <= 1000
    os.utime(path, (1_000_000_000, 1_000_000_000))
    with pytest.raises(RemoteChanged):
        probe.transport.open(1000, 2000, opts.http)
    session.close()
