"""The `sync` setting: config key, GETM_TUI_SYNC, and --no-sync on get, run (every job) and add (those
jobs only). What each does to the order of writes is tested in tests/runner/test_group_commit.py and
tests/engine/test_engine_sync.py; here, that each way of saying it reaches what it steers."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from getm_tui.cli.common import settings_from, sync_override
from getm_tui.cli.main import build_parser
from getm_tui.config import ConfigError, load
from tests.helpers.runner_util import add, cli, jobs


def test_sync_is_on_by_default_and_off_from_the_environment_or_the_file(tmp_path) -> None:
    assert load(None, environ={"GETM_TUI_CONFIG": ""}).sync is True
    assert load(None, environ={"GETM_TUI_CONFIG": "", "GETM_TUI_SYNC": "false"}).sync is False
    cfg = tmp_path / "config.toml"
    cfg.write_text("sync = false\n")
    assert load(str(cfg), environ={}).sync is False
    with pytest.raises(ConfigError, match="GETM_TUI_SYNC"):
        load(None, environ={"GETM_TUI_CONFIG": "", "GETM_TUI_SYNC": "sometimes"})


@pytest.mark.parametrize("verb", [["get", "http://127.0.0.1/x"], ["run"], ["add", "http://127.0.0.1/x"]])
def test_no_sync_is_an_option_of_get_run_and_add(verb, monkeypatch) -> None:
    monkeypatch.setenv("GETM_TUI_CONFIG", "")
    args = build_parser().parse_args([*verb, "--no-sync"])
    assert sync_override(args) == {"sync": False}
    assert settings_from(args).sync is False
    assert sync_override(build_parser().parse_args(verb)) == {}


def test_get_no_sync_saves_the_file(fault_server, tmp_path) -> None:
    data = os.urandom(300_000)
    url = fault_server.add("/scratch.bin", data)
    out = cli(str(tmp_path / "q"), "get", url, "-o", str(tmp_path), "--no-sync", "-q")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "scratch.bin").read_bytes() == data


@pytest.mark.slow
def test_add_no_sync_is_kept_with_those_jobs_only(fault_server, tmp_path) -> None:
    data_dir = str(tmp_path / "q")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    urls = [fault_server.add(f"/{n}.bin", os.urandom(1000)) for n in ("a", "b")]
    [scratch] = add(data_dir, urls[0], "-d", str(out_dir), "--no-sync")
    [durable] = add(data_dir, urls[1], "-d", str(out_dir))
    with sqlite3.connect(os.path.join(data_dir, "queue.sqlite3")) as c:
        info = {i: json.loads(raw or "{}") for i, raw in c.execute("SELECT id, info FROM jobs")}
    assert info[scratch].get("no_sync") is True and "no_sync" not in info[durable]
    out = cli(data_dir, "run", "--once")
    assert out.returncode == 0, out.stderr
    assert [j["state"] for j in jobs(data_dir)] == ["done", "done"]
