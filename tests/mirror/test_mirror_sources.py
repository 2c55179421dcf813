"""The mirror over nginx's autoindex pages and an s3:// prefix, and a saved mirror re-listed by `run`."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.helpers.runner_util import cli, start, wait_for
from tests.helpers.s3server import S3Server
from tests.mirror.test_mirror_http import mirror, run_once
from tests.mirror.trees import FILES, files_under, make_tree, write_md5sums


@pytest.mark.slow
def test_nginx_autoindex_tree(nginx_tree, tmp_path: Path) -> None:
    remote, url = nginx_tree
    make_tree(remote)
    write_md5sums(remote / "data", ["one.fa.gz"])
    dest, data = tmp_path / "dest", str(tmp_path / "q")
    assert mirror(data, url, str(dest)) == (6, 0)
    run_once(data)
    assert files_under(dest) == files_under(remote)
    assert mirror(data, url, str(dest)) == (0, 6)
    os.utime(remote / "a.txt", (1_700_000_600, 1_700_000_600))  # the same size, another minute
    assert mirror(data, url, str(dest)) == (1, 5)


@pytest.mark.slow
def test_an_s3_prefix(s3_server: S3Server, tmp_path: Path) -> None:
    files = {**FILES, "odd/what? #1.txt": b"a key is taken as written"}
    for relative, body in files.items():
        s3_server.put_object(f"bank/{relative}", body)
    s3_server.put_object("other/x.txt", b"not under the prefix")
    dest, data = tmp_path / "dest", str(tmp_path / "q")
    source = f"s3://{s3_server.bucket}/bank/"
    assert mirror(data, source, str(dest)) == (len(files), 0)
    run_once(data)
    assert files_under(dest) == files
    assert mirror(data, source, str(dest)) == (0, len(files))


@pytest.mark.slow
def test_a_saved_mirror_is_listed_again_by_run_on_its_interval(tree_server, tmp_path: Path) -> None:
    remote, url = tree_server
    make_tree(remote, {"first.txt": b"1"})
    dest, data = tmp_path / "dest", str(tmp_path / "q")
    config = tmp_path / "config.toml"
    config.write_text(f'[mirror.bank]\nsource = "{url}"\ndestination = "{dest}"\ninterval = "1s"\n')
    env = {"GETM_TUI_CONFIG": str(config)}
    runner = start(data, "run", env=env)
    try:
        wait_for(lambda: (dest / "first.txt").exists(), timeout=60)
        (remote / "second.txt").write_bytes(b"2")
        wait_for(lambda: (dest / "second.txt").exists(), timeout=60)
        status = cli(data, "mirror", "--status", env=env)
        assert status.returncode == 0 and "bank: " in status.stdout and ", ok: queued" in status.stdout
    finally:
        os.killpg(runner.pid, signal.SIGTERM)
        runner.communicate(timeout=30)
    assert files_under(dest) == {"first.txt": b"1", "second.txt": b"2"}
