"""The settings of this part of the config: the retry policy, archive checks, hooks and metrics."""

from __future__ import annotations

import logging
import os
import re

import pytest

from getm_tui.config import ConfigError, load
from getm_tui.engine import download

MiB = 1024 * 1024


def test_defaults_and_the_example_file_agree():
    example = load("config.example.toml", environ={})
    assert (example.retry_base, example.retry_cap, example.check_archives) == (0.5, 60.0, True)
    assert (example.on_done, example.on_fail, example.hook_timeout, example.metrics) == ("", "", 60.0, "")
    assert example == load(environ={"GETM_TUI_CONFIG": os.devnull})


def test_the_settings_reach_the_engine_options(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'retries = 2\nretry_base = 0.25\nretry_cap = 4\ncheck_archives = false\nmetrics = "[::1]:9464"\n'
    )
    s = load(str(cfg), environ={})
    opts = s.engine_options(concurrency=8)
    assert (opts.retries, opts.retry_base, opts.retry_cap, opts.check_archives) == (2, 0.25, 4.0, False)
    assert (opts.concurrency, opts.part_size) == (8, s.part_size)
    assert s.metrics == "[::1]:9464"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("retry_cap", "0", "retry_cap: must be greater than 0"),
        ("retry_base", "soon", "retry_base: expected a number, got 'soon'"),
        ("hook_timeout", "-1", "hook_timeout: must be greater than 0"),
        ("metrics", "9464", "metrics: expected HOST:PORT (e.g. 127.0.0.1:9464), got '9464'"),
        ("metrics", "host:99999", "metrics: expected HOST:PORT"),
        ("check_archives", "maybe", "check_archives: expected true or false"),
    ],
)
def test_bad_values_are_one_line(key, value, message):
    with pytest.raises(ConfigError, match="^" + re.escape(f"environment GETM_TUI_{key.upper()}: {message}")):
        load(environ={"GETM_TUI_CONFIG": os.devnull, f"GETM_TUI_{key.upper()}": value})


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 2])
def test_the_backoff_cap_is_honoured(concurrency, fault_server, tmp_path, caplog, engine_hygiene):
    """A base far above the cap: every wait is cut to the cap (the log line says how long it waits)."""
    data = os.urandom(3 * MiB)
    url = fault_server.add("/flaky.bin", data, drop_after=100_000, drop_times=2)
    settings = load(
        environ={"GETM_TUI_CONFIG": os.devnull, "GETM_TUI_RETRY_BASE": "300", "GETM_TUI_RETRY_CAP": "0.01"}
    )
    opts = settings.engine_options(concurrency=concurrency, part_size=MiB)
    with caplog.at_level(logging.INFO, logger="getm_tui"):
        res = download(url, str(tmp_path), options=opts)
    assert (tmp_path / "flaky.bin").read_bytes() == data
    # The probe's response may take one of the drops: the parts retry once or twice.
    waits = [float(w) for w in re.findall(r"retry \d+/\d+ in ([0-9.]+)s", caplog.text)]
    assert 1 <= len(waits) == res.retries and max(waits) <= 0.01
