"""`getm-tui get` as a user runs it: a real process, a real loopback server, real files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

DATA = os.urandom(3 * 1024 * 1024 + 17)
MD5 = hashlib.md5(DATA).hexdigest()


def run(
    *args: str, cwd: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "GETM_TUI_CONFIG": "", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "getm_tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=120,
    )


def test_get_saves_verifies_and_reports(fault_server, tmp_path):
    url = fault_server.add("/dir/data.bin", DATA, content_md5=True)
    out = run("get", url, "-o", str(tmp_path), "-c", "3", "--part-size", "1M", "--checksum", f"md5:{MD5}")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert "saved" in out.stdout and "verified" in out.stdout
    assert "Traceback" not in out.stderr
    assert sorted(os.listdir(tmp_path)) == ["data.bin"]


def test_get_mismatch_exits_1_and_leaves_nothing(fault_server, tmp_path):
    url = fault_server.add("/data.bin", DATA)
    out = run("get", url, "-o", str(tmp_path), "--checksum", "sha256:" + "0" * 64)
    assert out.returncode == 1
    line = out.stderr.strip().splitlines()[-1]
    assert "expected " + "0" * 64 in line and hashlib.sha256(DATA).hexdigest() in line
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_get_never_clobbers_without_overwrite(fault_server, tmp_path):
    url = fault_server.add("/data.bin", DATA)
    (tmp_path / "data.bin").write_bytes(b"precious")
    assert run("get", url, "-o", str(tmp_path)).returncode == 0
    assert (tmp_path / "data.bin").read_bytes() == b"precious"
    assert (tmp_path / "data (1).bin").read_bytes() == DATA
    assert run("get", url, "-o", str(tmp_path / "data.bin"), "--overwrite").returncode == 0
    assert (tmp_path / "data.bin").read_bytes() == DATA


@pytest.mark.slow
def test_secrets_in_urls_never_printed(fault_server, tmp_path):
    fault_server.add("/data.bin", DATA)
    url = fault_server.base_url.replace("http://", "http://user:hunter2@") + "/missing?X-Amz-Signature=s3cr3t"
    out = run("get", url, "-o", str(tmp_path), "-v")
    assert out.returncode == 1
    assert "404" in out.stderr
    assert "s3cr3t" not in out.stderr + out.stdout and "hunter2" not in out.stderr + out.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["get", "not a url"], "malformed URL"),
        (["get", "gopher://example.com/x"], "unsupported URL scheme"),
        (["get", "http://127.0.0.1:9/x", "--checksum", "whirlpool:00"], "unknown checksum algorithm"),
        (["get", "http://127.0.0.1:9/x", "--checksum", "md5:xyz"], "md5"),
        (["get", "http://127.0.0.1:9/x", "-o", "/nonexistent-dir/sub/"], "directory does not exist"),
        (["get", "http://127.0.0.1:9/x", "-c", "0"], "at least 1"),
        (["get"], "required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, needle):
    out = run(*args)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_broken_config_is_one_line_exit_2(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("concurrency = 'lots'\n")
    out = run("--config", str(cfg), "get", "http://127.0.0.1:9/x")
    assert out.returncode == 2
    assert out.stderr.strip() == "getm-tui: concurrency: expected a whole number, got 'lots'"


@pytest.mark.slow
def test_unreachable_server_fails_with_exit_1(tmp_path):
    out = run("get", "http://127.0.0.1:9/x", "-o", str(tmp_path), "--retries", "1")
    assert out.returncode == 1
    assert "connection refused" in out.stderr
    assert os.listdir(tmp_path) == []
