"""s3:// and gs:// from the command line: `get`, and `add` then `run --once`, as real processes against
moto's S3 and the GCS emulator (their environment variables are set by the fixtures, and inherited)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from getm_tui.queue.sqlite import Queue
from tests.helpers.gcsserver import GCSServer
from tests.helpers.s3server import S3Server

DATA = os.urandom(2 * 1024 * 1024 + 3)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    downloads = tmp_path / "downloads"
    downloads.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "GETM_TUI_CONFIG": "",
        "GETM_TUI_DOWNLOAD_DIR": str(downloads),
        "GETM_TUI_DATA_DIR": str(tmp_path / "data"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "getm_tui", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


@pytest.mark.slow
def test_get_an_s3_object(s3_server: S3Server, tmp_path: Path) -> None:
    s3_server.client.put_object(
        Bucket=s3_server.bucket, Key="cli/get.bin", Body=DATA, ChecksumAlgorithm="SHA1"
    )
    out = run(tmp_path, "get", f"s3://{s3_server.bucket}/cli/get.bin", "-o", str(tmp_path), "-c", "2")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "get.bin").read_bytes() == DATA
    assert "verified" in out.stdout and "x-amz-checksum-sha1" in out.stdout


@pytest.mark.slow
def test_add_and_run_s3_and_gs_objects(s3_server: S3Server, gcs_server: GCSServer, tmp_path: Path) -> None:
    s3_server.put_object("cli/queued.bin", DATA)
    gs_url = gcs_server.put_object("cli/other.bin", DATA[::-1])
    out = run(tmp_path, "add", f"s3://{s3_server.bucket}/cli/queued.bin", gs_url)
    assert out.returncode == 0, out.stderr
    out = run(tmp_path, "run", "--once")
    assert out.returncode == 0, out.stdout + out.stderr
    with Queue(str(tmp_path / "data")) as q:
        assert [(j.state, j.verdict) for j in q.jobs()] == [("done", "verified"), ("done", "verified")]
    assert (tmp_path / "downloads" / "queued.bin").read_bytes() == DATA
    assert (tmp_path / "downloads" / "other.bin").read_bytes() == DATA[::-1]


def test_add_anonymous_is_recorded_with_the_job(tmp_path: Path) -> None:
    out = run(tmp_path, "add", "--anonymous", "s3://public-bucket/key.bin", "gs://b/o")
    assert out.returncode == 0, out.stderr
    with Queue(str(tmp_path / "data")) as q:
        assert [(j.url, j.info.get("anonymous")) for j in q.jobs()] == [
            ("s3://public-bucket/key.bin", True),
            ("gs://b/o", True),
        ]


def test_add_refuses_a_bucket_url_without_a_bucket(tmp_path: Path) -> None:
    out = run(tmp_path, "add", "s3:///key")
    assert out.returncode == 2
    assert "malformed URL" in out.stderr
