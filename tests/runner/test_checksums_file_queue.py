"""`add --checksums-file`: URLs listed in a sums file are verified by the runner, the rest are not refused."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.helpers.runner_util import add, cli, jobs

MiB = 1024 * 1024


@pytest.mark.slow
def test_listed_urls_are_verified_and_unlisted_ones_still_run(fault_server, tmp_path):
    data_dir, out = str(tmp_path / "q"), tmp_path / "out"
    out.mkdir()
    files = {name: os.urandom(300_000 + i) for i, name in enumerate(("good.bin", "wrong.bin", "free.bin"))}
    files["big.bin"] = os.urandom(3 * MiB)  # several connections: the sha256 is fed in file order
    urls = {name: fault_server.add(f"/pub/{name}", data) for name, data in files.items()}
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(
        f"{hashlib.sha256(files['good.bin']).hexdigest()}  ./pub/good.bin\n"
        f"{hashlib.sha256(b'something else').hexdigest()} *wrong.bin\n"
        f"{hashlib.sha256(files['big.bin']).hexdigest()}  big.bin\n"
        f"{hashlib.sha256(b'x').hexdigest()}  not-queued.bin\n"
    )
    res = cli(data_dir, "add", *urls.values(), "-d", str(out), "--checksums-file", str(sums))
    assert res.returncode == 0, res.stderr
    assert res.stderr == "getm-tui: checksums for 3 of 4 URL(s) from SHA256SUMS\n"
    ids = dict(zip(urls, map(int, res.stdout.split()), strict=True))
    queued = {j["id"]: j for j in jobs(data_dir)}
    assert queued[ids["free.bin"]]["checksums"] == []
    assert queued[ids["good.bin"]]["checksums"] == [f"sha256:{hashlib.sha256(files['good.bin']).hexdigest()}"]

    run = cli(data_dir, "run", "--once", env={"GETM_TUI_PART_SIZE": "1M"})
    assert run.returncode == 1  # wrong.bin failed
    done = {j["id"]: j for j in jobs(data_dir)}
    assert [done[ids[n]]["verdict"] for n in ("good.bin", "wrong.bin", "free.bin", "big.bin")] == [
        "verified",
        "mismatch",
        "unverified",
        "verified",
    ]
    assert done[ids["wrong.bin"]]["error"].startswith(
        "checksum mismatch for wrong.bin: sha256 from SHA256SUMS"
    )
    assert sorted(os.listdir(out)) == ["big.bin", "free.bin", "good.bin"]


@pytest.mark.slow
def test_a_sums_file_that_cannot_be_used_adds_nothing(tmp_path):
    data_dir = str(tmp_path / "q")
    bad = tmp_path / "MD5SUMS"
    bad.write_text("nothing useful here\n")
    res = cli(data_dir, "add", "https://example.org/a.gz", "-d", str(tmp_path), "--checksums-file", str(bad))
    assert res.returncode == 2
    assert res.stderr.startswith(f"getm-tui: {bad} lists no checksum we can verify")
    res = cli(data_dir, "add", "https://example.org/a.gz", "-d", str(tmp_path), "--checksums-file", "/nope")
    assert (res.returncode, res.stderr) == (
        2,
        "getm-tui: cannot read checksums file /nope: No such file or directory\n",
    )
    assert add(data_dir, "https://example.org/a.gz", "-d", str(tmp_path)) == [1]  # nothing was added before
