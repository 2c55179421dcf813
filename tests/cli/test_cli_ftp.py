"""ftp:// from the command line, as real processes against pyftpdlib: `get`, `add` then `run --once`, and
a runner killed mid-file that resumes from its resume record on the next run.

A password in the URL is never printed: not by `get`, not by `add`, not by `ls` or `show`.
"""

from __future__ import annotations

import json
import os
import random

import pytest

from tests.helpers.ftpserver import PASSWORD, USER, FTPTestServer
from tests.helpers.kill_util import descendants, kill_group_and_wait
from tests.helpers.runner_util import add, cli, jobs, start, wait_for

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
DATA = random.Random(11).randbytes(3 * MiB + 5)


def _no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and PASSWORD.replace(" ", "%20") not in text


@pytest.mark.slow
def test_get_with_a_password(ftp_server: FTPTestServer, tmp_path) -> None:
    ftp_server.put("dir/file.bin", DATA)
    url = ftp_server.url("dir/file.bin", USER, PASSWORD)
    out = cli(str(tmp_path / "data"), "get", url, "-o", str(tmp_path), "-c", "3", "-v")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "file.bin").read_bytes() == DATA
    _no_password(out.stdout, out.stderr)
    assert set(ftp_server.record.users) == {USER}


def test_get_of_a_missing_file_is_one_line(ftp_server: FTPTestServer, tmp_path) -> None:
    url = ftp_server.url("nothing.bin", USER, PASSWORD)
    out = cli(str(tmp_path / "data"), "get", url, "-o", str(tmp_path))
    assert out.returncode == 1 and "550" in out.stderr and "Traceback" not in out.stderr
    _no_password(out.stdout, out.stderr)


@pytest.mark.slow
def test_add_then_run_once(ftp_server: FTPTestServer, tmp_path) -> None:
    data_dir = str(tmp_path / "data")
    ftp_server.put("a.bin", DATA)
    ftp_server.put("b.txt", b"small\n")
    url = ftp_server.url("a.bin", USER, PASSWORD)
    out = cli(data_dir, "add", url, ftp_server.url("b.txt"), "-d", str(tmp_path), "-c", "2")
    assert out.returncode == 0, out.stderr
    _no_password(out.stdout, out.stderr)
    run = cli(data_dir, "run", "--once", timeout=90)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "a.bin").read_bytes() == DATA
    assert (tmp_path / "b.txt").read_bytes() == b"small\n"
    listed = cli(data_dir, "ls", "--json")
    shown = cli(data_dir, "show", "1")
    _no_password(run.stdout, run.stderr, listed.stdout, shown.stdout)
    assert [j["state"] for j in json.loads(listed.stdout)] == ["done", "done"]


def test_add_refuses_an_ftp_url_without_a_host(tmp_path) -> None:
    out = cli(str(tmp_path / "data"), "add", "ftp:///pub/file.bin", "-d", str(tmp_path))
    assert out.returncode == 2 and "no host" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_runner_killed_mid_file_resumes(ftp_server: FTPTestServer, tmp_path) -> None:
    data_dir = str(tmp_path / "data")
    data = random.Random(12).randbytes(6 * MiB)
    ftp_server.put("big.bin", data)
    ftp_server.record.rate = MiB // 2  # per data connection: the kill lands mid-file
    [job] = add(data_dir, ftp_server.url("big.bin"), "-d", str(tmp_path), "-c", "2")
    runner = start(data_dir, "run")
    seen: set[int] = set()
    try:
        wait_for(lambda: (jobs(data_dir)[0].get("bytes_done") or 0) >= MiB or runner.poll() is not None, 60)
        seen = {p.pid for p in descendants(runner.pid)}
    finally:
        kill_group_and_wait(runner.pid, seen)
    kept = jobs(data_dir)[0]["bytes_done"]
    assert 0 < kept < len(data)
    ftp_server.record.rate = 0
    ftp_server.record.retrs.clear()
    run = cli(data_dir, "run", "--once", timeout=90)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "big.bin").read_bytes() == data
    assert not os.path.exists(tmp_path / "big.bin.getm-part")
    # After the probe's RETR, the second run asked only for what was not recorded: the first part, which
    # starts at byte 0 and had bytes kept, continued past them (a REST to a kept position).
    retrs = ftp_server.record.retrs
    assert retrs[0] == 0 and len(retrs) >= 2 and 0 not in retrs[1:], retrs
    assert any(r % (3 * MiB) for r in retrs[1:]), retrs
    assert job == jobs(data_dir)[0]["id"]
