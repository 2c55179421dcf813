"""The README's worked example, "Mirror a data bank", over FTP and SFTP: a tree with an MD5SUMS is mirrored
with `--match`, verified file by file, current on the next pass, and kept current by a runner from a saved
mirror when the bank publishes a new release (a changed file and its new sum, a file gone with --delete)."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest

from tests.helpers.ftpserver import FTPTestServer
from tests.helpers.runner_util import cli, jobs, start, wait_for
from tests.helpers.sftpserver import PASSWORD, SFTPTestServer
from tests.mirror.test_mirror_http import mirror, run_once
from tests.mirror.trees import files_under

pytestmark = pytest.mark.timeout(180)

RELEASE = {
    "bank/a.fa.gz": os.urandom(300_000),
    "bank/b.fa.gz": os.urandom(200_000),
    "bank/sub/c.fa.gz": os.urandom(5_000),
    "bank/README.txt": b"not selected\n",
}


def publish(root: Path, files: dict[str, bytes]) -> None:
    """Write the release under `root` with an MD5SUMS beside the data, as banks publish them."""
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    sums = [
        f"{hashlib.md5(data).hexdigest()}  {relative.removeprefix('bank/')}\n"
        for relative, data in sorted(files.items())
        if relative.endswith(".gz")
    ]
    (root / "bank" / "MD5SUMS").write_text("".join(sums))


def selected(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in files_under(root / "bank").items() if k.endswith(".gz") or k == "MD5SUMS"}


@pytest.mark.slow
def test_an_ftp_bank_with_its_md5sums(ftp_server: FTPTestServer, tmp_path: Path) -> None:
    root = Path(ftp_server.root)
    publish(root, RELEASE)
    source, dest, data = ftp_server.url("bank/"), tmp_path / "x", str(tmp_path / "q")
    assert mirror(data, source, str(dest), "--match", r"\.fa\.gz$") == (4, 0)  # 3 files and MD5SUMS
    run_once(data)
    assert files_under(dest) == selected(root)
    verdicts = {j["name"]: j["verdict"] for j in jobs(data)}
    assert verdicts == {
        "a.fa.gz": "verified",
        "b.fa.gz": "verified",
        "c.fa.gz": "verified",
        "MD5SUMS": "unverified",
    }
    assert mirror(data, source, str(dest), "--match", r"\.fa\.gz$") == (0, 4)


@pytest.mark.slow
def test_a_saved_ftp_mirror_is_kept_current_by_a_runner(ftp_server: FTPTestServer, tmp_path: Path) -> None:
    root = Path(ftp_server.root)
    publish(root, RELEASE)
    dest, data = tmp_path / "x", str(tmp_path / "q")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[mirror.x]\nsource = "{ftp_server.url("bank/")}"\ndestination = "{dest}"\n'
        "match = ['\\.fa\\.gz$']\ndelete = true\ninterval = \"1s\"\n"
    )
    env = {"GETM_TUI_CONFIG": str(config)}
    runner = start(data, "run", env=env)
    try:
        wait_for(lambda: files_under(dest) == selected(root) if dest.exists() else False, timeout=90)
        # The next release: b changes (a new size and a new sum), c is withdrawn, d is new.
        (root / "bank" / "sub" / "c.fa.gz").unlink()
        release = {"bank/a.fa.gz": RELEASE["bank/a.fa.gz"], "bank/b.fa.gz": os.urandom(210_000)}
        publish(root, {**release, "bank/d.fa.gz": os.urandom(7_000)})
        wait_for(lambda: files_under(dest) == selected(root), timeout=90)
    finally:
        os.killpg(runner.pid, signal.SIGTERM)
        runner.communicate(timeout=30)
    assert "sub/c.fa.gz" not in files_under(dest)
    assert all(j["verdict"] in ("verified", "unverified") and j["state"] == "done" for j in jobs(data))


@pytest.mark.slow
def test_an_sftp_bank(sftp_server: SFTPTestServer, tmp_path: Path) -> None:
    root = Path(sftp_server.root)
    publish(root, RELEASE)
    (tmp_path / "known_hosts").write_text(sftp_server.known_hosts_line())
    env = {"GETM_TUI_SFTP_KNOWN_HOSTS": str(tmp_path / "known_hosts"), "GETM_TUI_SFTP_PASSWORD": PASSWORD}
    source, dest, data = sftp_server.url("bank/"), tmp_path / "x", str(tmp_path / "q")
    assert mirror(data, source, str(dest), "--match", r"\.fa\.gz$", env=env) == (4, 0)
    out = cli(data, "run", "--once", env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert files_under(dest) == selected(root)
    assert {j["verdict"] for j in jobs(data) if j["name"].endswith(".gz")} == {"verified"}
    assert mirror(data, source, str(dest), "--match", r"\.fa\.gz$", env=env) == (0, 4)
