"""sftp:// from the command line, as real processes against asyncssh: `get` and `add` + `run --once`, with
the known_hosts file, the key file and the host key policy from the environment (config keys), and the
password never printed."""

from __future__ import annotations

import json
import random

import pytest

from tests.helpers.runner_util import cli
from tests.helpers.sftpserver import PASSWORD, SFTPTestServer

pytestmark = pytest.mark.timeout(120)

DATA = random.Random(13).randbytes(3 * 1024 * 1024 + 1)


def _env(tmp_path, **more: str) -> dict[str, str]:
    return {"GETM_TUI_SFTP_KNOWN_HOSTS": str(tmp_path / "known_hosts"), **more}


@pytest.mark.slow
def test_get_with_a_key_and_a_known_host(sftp_server: SFTPTestServer, tmp_path) -> None:
    sftp_server.put("data/file.bin", DATA)
    (tmp_path / "known_hosts").write_text(sftp_server.known_hosts_line())
    key = sftp_server.write_client_key(str(tmp_path / "id_test"))
    env = _env(tmp_path, GETM_TUI_SFTP_KEY_FILE=key)
    out = cli(
        str(tmp_path / "data"),
        "get",
        sftp_server.url("data/file.bin"),
        "-o",
        str(tmp_path),
        "-c",
        "2",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "file.bin").read_bytes() == DATA


@pytest.mark.slow
def test_get_from_an_unknown_host_is_one_line(sftp_server: SFTPTestServer, tmp_path) -> None:
    sftp_server.put("f.bin", b"x")
    url = sftp_server.url("f.bin", password=PASSWORD)
    out = cli(str(tmp_path / "data"), "get", url, "-o", str(tmp_path), env=_env(tmp_path))
    assert out.returncode == 1 and "not in known_hosts" in out.stderr
    assert "Traceback" not in out.stderr and PASSWORD not in out.stderr
    bad = cli(str(tmp_path / "data"), "get", url, env=_env(tmp_path, GETM_TUI_SFTP_HOST_KEYS="maybe"))
    assert bad.returncode == 2 and "sftp_host_keys" in bad.stderr and "reject, accept, add" in bad.stderr


@pytest.mark.slow
def test_add_then_run_once_adding_the_host(sftp_server: SFTPTestServer, tmp_path) -> None:
    data_dir = str(tmp_path / "data")
    sftp_server.put("a.bin", DATA)
    env = _env(tmp_path, GETM_TUI_SFTP_HOST_KEYS="add")
    out = cli(data_dir, "add", sftp_server.url("a.bin", password=PASSWORD), "-d", str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr
    run = cli(data_dir, "run", "--once", env=env, timeout=90)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "a.bin").read_bytes() == DATA
    assert (tmp_path / "known_hosts").read_text() == sftp_server.known_hosts_line()
    listed = cli(data_dir, "ls", "--json")
    assert json.loads(listed.stdout)[0]["state"] == "done"
    for text in (out.stdout, out.stderr, run.stdout, run.stderr, listed.stdout):
        assert PASSWORD not in text and PASSWORD.replace(" ", "%20") not in text
