"""Settings precedence and error messages."""

from __future__ import annotations

import os

import pytest

from getm_tui.config import ConfigError, Settings, load, parse_size


def test_defaults_when_no_file(tmp_path):
    s = load(None, environ={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)})
    assert s == Settings(download_dir=s.download_dir)
    assert s.concurrency == 4 and s.part_size == 16 * 1024 * 1024


def test_precedence_file_env_cli(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('concurrency = 8\npart_size = "4M"\nmax_active = 2\nrate_limit = "10M"\n')
    s = load(str(cfg), overrides={"max_active": 5}, environ={"GETM_TUI_CONCURRENCY": "12"})
    assert (s.concurrency, s.part_size, s.max_active, s.rate_limit) == (12, 4 << 20, 5, 10 << 20)


def test_example_config_is_valid_and_matches_defaults():
    s = load("config.example.toml", environ={})
    assert s == Settings(download_dir=s.download_dir)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concurrency = 0\n", "concurrency: must be at least 1"),
        ("nonsense = 1\n", "unknown key 'nonsense'"),
        ("part_size = 'huge'\n", "part_size: expected a size like 16M"),
        ("verify_tls = 'maybe'\n", "verify_tls: expected true or false"),
        ("concurrency = \n", "not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(str(cfg), environ={})


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="GETM_TUI_RETRIES"):
        load(None, environ={"GETM_TUI_RETRIES": "many", "XDG_CONFIG_HOME": "/nonexistent"})


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load(str(tmp_path / "missing.toml"), environ={})


def test_parse_size():
    assert parse_size("16M") == parse_size("16 MiB") == 16 << 20
    assert parse_size(1000) == 1000 and parse_size("1.5G") == 3 << 29
    with pytest.raises(ValueError):
        parse_size("-3")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ftp_tls", "sometimes", "ftp_tls: expected one of auto, require, off"),
        ("sftp_host_keys", "trust", "sftp_host_keys: expected one of reject, accept, add"),
    ],
)
def test_remote_access_choices(tmp_path, key, value, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"{key} = '{value}'\n")
    with pytest.raises(ConfigError, match=message):
        load(str(cfg), environ={})


def test_remote_access_settings_reach_the_engine(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "ftp_tls = 'require'\nsftp_password = '~secret'\nsftp_key_file = '~/k'\nsftp_host_keys = 'add'\n"
    )
    access = load(str(cfg), environ={}).access(anonymous=True)
    assert (access.anonymous, access.ftp_tls, access.sftp_host_keys) == (True, "require", "add")
    assert access.sftp_password == "~secret"  # taken as written
    assert access.sftp_key_file == os.path.expanduser("~/k")
    assert "secret" not in repr(access)
