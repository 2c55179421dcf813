"""Archive checks as a user meets them: `getm-tui get`, and jobs queued with `add` and run by `run --once`,
over several connections, with and without a known checksum, and with the check turned off."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.helpers.archives import KIND_NAMES, KINDS, cases, data_of
from tests.helpers.runner_util import add, cli, jobs

# Parts of 1 MiB: the archives (3 MiB) are fetched over several connections.
ENV = {"GETM_TUI_PART_SIZE": "1M", "GETM_TUI_CONCURRENCY": "4", "GETM_TUI_RETRY_BASE": "0.01"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_get_saves_intact_archives_and_refuses_damaged_ones(kind, fault_server, tmp_path):
    data_dir, out = str(tmp_path / "q"), tmp_path / "out"
    out.mkdir()
    for how in ("good", "truncated", "corrupted"):
        url = fault_server.add(f"/{how}.{kind}", data_of(kind, how))
        res = cli(data_dir, "get", "-q", url, "-o", str(out), env=ENV)
        assert "Traceback" not in res.stderr
        if how == "good":
            assert res.returncode == 0, res.stderr
            assert f"unverified, archive intact ({KIND_NAMES[kind]})" in res.stdout
        else:
            assert res.returncode == 1
            line = f"getm-tui: archive check failed: {how}.{kind}: {KIND_NAMES[kind]}: "
            assert res.stderr.startswith(line), res.stderr
            assert len(res.stderr.strip().splitlines()) == 1
    assert os.listdir(out) == [f"good.{kind}"]


@pytest.mark.slow
def test_get_with_a_checksum_or_the_check_off_saves_a_damaged_archive(fault_server, tmp_path):
    data_dir, out = str(tmp_path / "q"), tmp_path / "out"
    out.mkdir()
    bad = data_of("tar.zst", "corrupted")
    url = fault_server.add("/d.tar.zst", bad)
    md5 = hashlib.md5(bad).hexdigest()
    res = cli(data_dir, "get", url, "-o", str(out / "sum.tar.zst"), "--checksum", f"md5:{md5}", env=ENV)
    assert res.returncode == 0 and "verified: md5 (user)" in res.stdout, res.stderr
    res = cli(
        data_dir, "get", url, "-o", str(out / "off.tar.zst"), env={**ENV, "GETM_TUI_CHECK_ARCHIVES": "no"}
    )
    assert res.returncode == 0 and "; unverified)" in res.stdout, res.stderr
    assert (out / "off.tar.zst").read_bytes() == bad


@pytest.mark.slow
def test_the_queue_fails_damaged_archives_and_keeps_intact_ones(fault_server, tmp_path):
    """Every kind, intact and damaged, in one queue, and two damaged ones whose checksums are known."""
    data_dir, out = str(tmp_path / "q"), tmp_path / "out"
    out.mkdir()
    urls = {(kind, how): fault_server.add(f"/{how}.{kind}", data_of(kind, how)) for kind, how in cases()}
    ids = dict(zip(urls, add(data_dir, *urls.values(), "-d", str(out)), strict=True))
    bad = data_of("gz", "truncated")
    summed = fault_server.add("/summed.gz", bad)
    (summed_id,) = add(
        data_dir, summed, "-d", str(out), "--checksum", "sha256:" + hashlib.sha256(bad).hexdigest()
    )
    wrong = fault_server.add("/wrong.zip", data_of("zip", "good"))
    (wrong_id,) = add(data_dir, wrong, "-d", str(out), "--checksum", "md5:" + "0" * 32)

    res = cli(data_dir, "run", "--once", env=ENV, timeout=240)
    assert res.returncode == 1, res.stderr  # jobs failed
    listed = {j["id"]: j for j in jobs(data_dir)}
    for (kind, how), job_id in ids.items():
        job = listed[job_id]
        if how == "good":
            assert (job["state"], job["verdict"]) == ("done", "unverified"), job
            (entry,) = json.loads(cli(data_dir, "show", str(job_id), "--json").stdout)["integrity"]
            assert (entry["algorithm"], entry["source"], entry["ok"]) == ("archive", KIND_NAMES[kind], True)
        else:
            assert (job["state"], job["verdict"]) == ("failed", "mismatch"), job
            assert job["error"].startswith(f"archive check failed: {how}.{kind}: {KIND_NAMES[kind]}: ")
    assert (listed[summed_id]["state"], listed[summed_id]["verdict"]) == ("done", "verified")
    assert listed[wrong_id]["error"].startswith("checksum mismatch")
    saved = sorted(os.listdir(out))
    assert saved == sorted([f"good.{kind}" for kind in KINDS] + ["summed.gz"]), saved
