"""s3:// and gs:// from the command line: `get`, and `add` then `run --once`, as real processes against
moto's S3 and the GCS emulator (their environment variables are set by the fixtures, and inherited).

`add` of a whole prefix: a paginated listing streamed into the queue, filters, names that would escape
the directory refused, and objects already present skipped (a second `add` queues nothing). moto's S3
splits listings into pages of 1,000 keys, as S3 does; the GCS emulator answers in one page.
"""

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
        [sys.executable, "-m", "getm_tui", *args], capture_output=True, text=True, env=env, timeout=180
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


def queued(tmp_path: Path) -> list[tuple[str, str]]:
    """(url, path relative to the download dir) of every job."""
    base = str(tmp_path / "downloads")
    with Queue(str(tmp_path / "data")) as q:
        return [(j.url, os.path.relpath(os.path.join(j.directory, j.name or ""), base)) for j in q.jobs()]


@pytest.mark.slow
def test_a_prefix_of_more_than_a_page_skips_what_is_present(s3_server: S3Server, tmp_path: Path) -> None:
    bucket, client = s3_server.bucket, s3_server.client
    body = {i: f"object {i}\n".encode() for i in range(1050)}
    for i, data in body.items():
        client.put_object(Bucket=bucket, Key=f"many/d{i % 10}/k{i}.txt", Body=data)
    client.put_object(Bucket=bucket, Key="many-not-under-the-prefix.txt", Body=b"x")
    downloads = tmp_path / "downloads"
    for i in range(1000):  # local copies of the first thousand, one of them stale
        path = downloads / f"d{i % 10}" / f"k{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stale" if i == 7 else body[i])
    out = run(tmp_path, "add", f"s3://{bucket}/many/")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == f"getm-tui: s3://{bucket}/many/: queued 51, skipped 999 already present"
    jobs = queued(tmp_path)
    assert len(out.stdout.split()) == len(jobs) == 51
    assert sorted(path for _url, path in jobs) == sorted(
        [os.path.join("d7", "k7.txt")] + [os.path.join(f"d{i % 10}", f"k{i}.txt") for i in range(1000, 1050)]
    )


@pytest.mark.slow
def test_filters_hostile_keys_and_a_second_add_queues_nothing(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.bucket
    for key in ("small/a.txt", "small/sub/c.txt", "small/b.csv", "small/../escape.txt", "small/x//y.txt"):
        s3_server.client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    out = run(tmp_path, "add", "-r", f"s3://{bucket}/small", "--exclude", "*.csv")
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    assert "refusing '../escape.txt' from the listing" in out.stderr
    assert "refusing 'x//y.txt' from the listing" in out.stderr
    assert lines[-1].endswith("queued 2, skipped 0 already present, 1 filtered out, refused 2 unsafe names")
    assert sorted(path for _url, path in queued(tmp_path)) == ["a.txt", os.path.join("sub", "c.txt")]
    out = run(tmp_path, "run", "--once")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "downloads" / "sub" / "c.txt").read_bytes() == b"small/sub/c.txt"
    assert not (tmp_path / "escape.txt").exists()
    again = run(tmp_path, "add", "-r", f"s3://{bucket}/small", "--exclude", "*.csv")
    assert again.returncode == 0 and again.stdout == ""
    assert "queued 0, skipped 2 already present" in again.stderr


def test_a_gs_prefix_with_include(gcs_server: GCSServer, tmp_path: Path) -> None:
    for name in ("tree/one.bin", "tree/deep/two.bin", "tree/skip.log", "elsewhere/three.bin"):
        gcs_server.put_object(name, name.encode())
    out = run(tmp_path, "add", f"gs://{gcs_server.bucket}/tree/", "--include", "*.bin")
    assert out.returncode == 0, out.stderr
    assert sorted(queued(tmp_path)) == [
        (f"gs://{gcs_server.bucket}/tree/deep/two.bin", os.path.join("deep", "two.bin")),
        (f"gs://{gcs_server.bucket}/tree/one.bin", "one.bin"),
    ]


def test_a_prefix_takes_no_output_name(tmp_path: Path) -> None:
    out = run(tmp_path, "add", "s3://bucket/prefix/", "-o", "name")
    assert out.returncode == 2 and "a prefix takes no checksum and no -o NAME" in out.stderr
