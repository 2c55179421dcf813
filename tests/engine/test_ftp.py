"""ftp:// and ftps:// against a real pyftpdlib server: logins, parts over several connections, cut data
connections, a server without REST, a file that changed between runs, and TLS both ways.

The server records what the engine did (each RETR's REST offset and control connection, the USER names),
so a test sees that parts went over connections of their own and that a retry continued where the cut
left it instead of starting over.
"""

from __future__ import annotations

import logging
import os
import random

import pytest

from getm_tui.engine import DownloadError, HTTPSettings, Options, download, urlopen
from tests.helpers.engine_util import read, shm_names
from tests.helpers.ftpserver import PASSWORD, USER, FTPTestServer

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
DATA = random.Random(7).randbytes(5 * MiB + 17)
OPTS = Options(part_size=MiB, retries=3, retry_base=0.01)


def test_anonymous_small_file_inline(ftp_server: FTPTestServer, tmp_path) -> None:
    ftp_server.put("pub/readme.txt", b"hello over ftp\n")
    result = download(ftp_server.url("pub/readme.txt"), str(tmp_path), options=OPTS)
    assert read(result.path) == b"hello over ftp\n"
    assert os.path.basename(result.path) == "readme.txt"
    assert result.verdict == "unverified" and result.probe is not None
    assert result.probe.validator is not None and result.probe.validator[:14].isdigit()  # MDTM
    assert ftp_server.record.users == ["anonymous"]


@pytest.mark.slow
def test_one_file_over_several_connections(ftp_server: FTPTestServer, tmp_path) -> None:
    before = shm_names()
    ftp_server.put("pub/big.bin", DATA)
    result = download(ftp_server.url("pub/big.bin"), str(tmp_path), concurrency=4, options=OPTS)
    assert read(result.path) == DATA
    assert result.connections == 4
    record = ftp_server.record
    # The probe's RETR, then one per part: REST to each part's first byte, each on a control connection
    # of its own.
    assert sorted(record.retrs[1:]) == [i * MiB for i in range(6)]
    assert len(record.retr_clients) == 7
    assert "EPSV" in record.commands and "PASV" not in record.commands
    assert shm_names() == before


@pytest.mark.slow
def test_password_login_and_a_checksum(ftp_server: FTPTestServer, tmp_path) -> None:
    import hashlib

    ftp_server.put("private/data.bin", DATA)
    url = ftp_server.url("private/data.bin", USER, PASSWORD)
    result = download(
        url, str(tmp_path), concurrency=3, checksum=f"sha256:{hashlib.sha256(DATA).hexdigest()}", options=OPTS
    )
    assert read(result.path) == DATA and result.verdict == "verified"
    assert set(ftp_server.record.users) == {USER}
    assert PASSWORD not in repr(result.probe.transport)  # it travels to the workers with the password
    assert "s3cret" not in repr(result.probe) and "s3cret" not in repr(result)  # reprs reach logs


def test_wrong_password_fails_without_showing_it(ftp_server: FTPTestServer, tmp_path) -> None:
    ftp_server.put("f.bin", b"x")
    with pytest.raises(DownloadError) as e:
        download(ftp_server.url("f.bin", USER, "not-the-pass"), str(tmp_path), options=OPTS)
    assert "530" in str(e.value) and "not-the-pass" not in str(e.value) and USER not in str(e.value)


def test_netrc_gives_the_login(ftp_server: FTPTestServer, tmp_path, monkeypatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD.replace(' ', '')}x\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    ftp_server.put("f.bin", b"x")
    with pytest.raises(DownloadError, match="530"):  # the netrc's (wrong) password was used
        download(ftp_server.url("f.bin"), str(tmp_path), options=OPTS)
    assert ftp_server.record.users == [USER]


def test_missing_file_and_directory(ftp_server: FTPTestServer, tmp_path) -> None:
    ftp_server.put("pub/a.txt", b"a")
    with pytest.raises(DownloadError, match="550"):
        download(ftp_server.url("pub/nothing.bin"), str(tmp_path), options=OPTS)
    with pytest.raises(DownloadError, match="directory"):
        download(ftp_server.url("pub/"), str(tmp_path), options=OPTS)


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 4])
def test_data_connection_cut_mid_file_continues(ftp_server: FTPTestServer, tmp_path, concurrency) -> None:
    ftp_server.put("big.bin", DATA)
    ftp_server.record.cut_after = MiB // 2 if concurrency else 3 * MiB  # the probe's own body when inline
    if concurrency:
        ftp_server.record.cut_after = None

        def cut_the_first_part(probe, target) -> None:
            ftp_server.record.cut_after = MiB // 2

        result = download(
            ftp_server.url("big.bin"), str(tmp_path), concurrency=4, options=OPTS, on_probe=cut_the_first_part
        )
    else:
        result = download(ftp_server.url("big.bin"), str(tmp_path), concurrency=None, options=OPTS)
    assert read(result.path) == DATA
    assert ftp_server.record.cuts == 1 and result.retries == 1
    # The retry continued from the bytes written before the cut: REST to them.
    if concurrency:
        assert [r % MiB for r in ftp_server.record.retrs].count(MiB // 2) == 1
    else:
        assert ftp_server.record.retrs == [0, 3 * MiB]


@pytest.mark.slow
def test_server_without_rest_gets_one_connection(ftp_server: FTPTestServer, tmp_path, caplog) -> None:
    ftp_server.put("big.bin", DATA)
    ftp_server.record.refuse_rest = True
    with caplog.at_level(logging.WARNING, logger="getm_tui"):
        result = download(ftp_server.url("big.bin"), str(tmp_path), concurrency=4, options=OPTS)
    assert read(result.path) == DATA and result.connections == 1
    assert set(ftp_server.record.retrs) == {0}
    assert any("refuses REST" in r.getMessage() and "starts over" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_server_without_rest_starts_over_after_a_cut(ftp_server: FTPTestServer, tmp_path) -> None:
    ftp_server.put("big.bin", DATA)
    ftp_server.record.refuse_rest = True

    def cut(probe, target) -> None:
        ftp_server.record.cut_after = 2 * MiB

    result = download(ftp_server.url("big.bin"), str(tmp_path), concurrency=2, options=OPTS, on_probe=cut)
    assert read(result.path) == DATA and ftp_server.record.cuts == 1
    assert ftp_server.record.retrs == [0, 0, 0]  # the probe's, the cut one, and the one that started over
    assert "REST" not in ftp_server.record.commands[ftp_server.record.commands.index("REST") + 1 :]


@pytest.mark.slow
@pytest.mark.parametrize("changed", [False, True])
def test_resume_unless_size_or_mdtm_changed(ftp_server: FTPTestServer, tmp_path, caplog, changed) -> None:
    path = ftp_server.put("big.bin", DATA)
    url = ftp_server.url("big.bin")
    once = Options(part_size=MiB, retries=0, retry_base=0.01)

    def cut(probe, target) -> None:
        ftp_server.record.cut_after = MiB // 2

    with pytest.raises(DownloadError):
        download(url, str(tmp_path), concurrency=1, options=once, on_probe=cut)
    assert os.path.exists(tmp_path / "big.bin.getm-part")
    ftp_server.record.retrs.clear()
    if changed:
        os.utime(path, (1_000_000_000, 1_000_000_000))
    with caplog.at_level(logging.WARNING, logger="getm_tui"):
        result = download(url, str(tmp_path), concurrency=1, options=OPTS)
    assert read(result.path) == DATA
    started_over = any("remote file changed" in r.getMessage() for r in caplog.records)
    assert started_over is changed
    assert (result.resumed > 0) is not changed
    assert any(ftp_server.record.retrs[1:]) is not changed  # a REST to the kept bytes, or from 0


def test_urlopen_reads_ftp(ftp_server: FTPTestServer) -> None:
    ftp_server.put("s.bin", DATA[: 300 * 1024])
    with urlopen(ftp_server.url("s.bin"), concurrency=None) as reader:
        assert b"".join(bytes(v) for v in reader) == DATA[: 300 * 1024]


def test_epsv_refused_falls_back_to_pasv(ftp_server: FTPTestServer, tmp_path) -> None:
    ftp_server.put("s.bin", b"pasv" * 1000)
    ftp_server.record.refuse_epsv = True
    result = download(ftp_server.url("s.bin"), str(tmp_path), options=OPTS)
    assert read(result.path) == b"pasv" * 1000 and "PASV" in ftp_server.record.commands


@pytest.mark.slow
def test_ftps_verified_against_its_ca(ftps_server: FTPTestServer, tls_ca, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", tls_ca[0])
    ftps_server.put("s.bin", DATA[:200_000])
    # "require" asks for TLS on an anonymous login too; ftps:// has it from the first byte anyway.
    opts = Options(part_size=MiB, retries=1, retry_base=0.01, access=_access(ftp_tls="require"))
    result = download(ftps_server.url("s.bin"), str(tmp_path), concurrency=None, options=opts)
    assert read(result.path) == DATA[:200_000]
    assert "PROT" in ftps_server.record.commands
    if ftps_server.tls == "explicit":
        assert "AUTH" in ftps_server.record.commands


@pytest.mark.slow
def test_ftps_several_connections_with_a_password(ftps_server: FTPTestServer, tmp_path) -> None:
    ftps_server.put("big.bin", DATA)
    insecure = Options(part_size=MiB, retries=1, retry_base=0.01, http=HTTPSettings(verify_tls=False))
    url = ftps_server.url("big.bin", USER, PASSWORD)
    result = download(url, str(tmp_path), concurrency=3, options=insecure)
    assert read(result.path) == DATA and result.connections == 3
    assert ftps_server.record.commands.count("PROT") == len(ftps_server.record.retr_clients) == 7


def test_ftps_unknown_ca_is_refused(ftps_server: FTPTestServer, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    ftps_server.put("s.bin", b"x")
    opts = Options(retries=0, access=_access(ftp_tls="require"))
    with pytest.raises(DownloadError, match="certificate verification failed.*--insecure"):
        download(ftps_server.url("s.bin"), str(tmp_path), options=opts)


def test_tls_required_but_refused(ftp_server: FTPTestServer, tmp_path) -> None:
    ftp_server.put("s.bin", b"x")
    opts = Options(retries=0, access=_access(ftp_tls="require"))
    with pytest.raises(DownloadError, match="refuses TLS"):
        download(ftp_server.url("s.bin", USER, PASSWORD), str(tmp_path), options=opts)
    # "auto" goes on in plain text when the server has no TLS.
    result = download(ftp_server.url("s.bin", USER, PASSWORD), str(tmp_path), options=Options(retries=0))
    assert read(result.path) == b"x" and "AUTH" in ftp_server.record.commands


def _access(**given):
    from getm_tui.engine.sources.base import Access

    return Access(**given)
