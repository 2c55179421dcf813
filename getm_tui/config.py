"""Settings: defaults <- config file <- environment <- command line.

The file is TOML at `<user config dir>/getm-tui/config.toml` (or --config / GETM_TUI_CONFIG). A missing file
means defaults; a broken one or a bad value is one line naming the key and the problem (ConfigError, exit 2).
Environment variables are `GETM_TUI_<KEY>` in capitals.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from dataclasses import dataclass, fields
from typing import Any

import platformdirs

APP = "getm-tui"
ENV_PREFIX = "GETM_TUI_"


class ConfigError(Exception):
    """A config file, environment variable or option that cannot be used; one line for the user."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)?\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: Any) -> int:
    """Bytes from 16777216, "16M", "16 MiB", "1.5G" (binary units, as aria2 and wget read them)."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 16M")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"expected a size like 16M, got {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def default_download_dir() -> str:
    return platformdirs.user_downloads_dir()


def default_data_dir() -> str:
    return platformdirs.user_data_dir(APP)


def default_config_path() -> str:
    return os.path.join(platformdirs.user_config_dir(APP), "config.toml")


@dataclass
class Settings:
    """Every setting, with its default; `config.example.toml` documents the same keys."""

    download_dir: str = dataclasses.field(default_factory=default_download_dir)
    # Many jobs at once (a queue of small files waits on replies, not on bandwidth), and a bound on the
    # connections they use together, which big files share (runner/budget.py).
    max_active: int = 16
    max_connections: int = 16
    concurrency: int = 4
    part_size: int = 16 * 1024 * 1024
    retries: int = 6
    retry_base: float = 0.5  # seconds: the first backoff window, doubled after each failure of a part
    retry_cap: float = 60.0  # seconds: the largest backoff window
    check_archives: bool = True  # test .gz/.bz2/.xz/.zst/.zip/.tar* downloads with no checksum known
    rate_limit: int = 0  # bytes per second for the whole queue; 0 means no limit
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    verify_tls: bool = True
    max_redirects: int = 10
    queue_timeout: float = 10.0  # seconds to wait for a queue file another process keeps locked
    allow_insecure_redirect: bool = False
    # The queue: "" for the SQLite file in the data dir; a PostgreSQL connection string for a fleet.
    queue: str = ""
    lease_timeout: float = 30.0  # seconds a fleet's runner holds a job without renewing its lease
    on_done: str = ""  # a command run (by sh) when a job is done; the job in GETM_* variables
    on_fail: str = ""  # ... when a job fails
    hook_timeout: float = 60.0  # seconds a hook may run before it is killed
    metrics: str = ""  # HOST:PORT where `run` serves Prometheus metrics; "" serves none
    # The saved mirrors, by name: the file's [mirror.NAME] tables (mirror/spec.py), not a key of its own.
    mirrors: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Connections open at once to one origin (scheme, host, port) by all jobs of a runner, and of all
    # runners of a fleet together; 0: no cap of its own (max_connections still bounds a runner's total).
    max_connections_per_host: int = 0

    def engine_options(self, **given: Any) -> Any:
        """The engine's Options from these settings; `given` sets the fields that differ per download
        (concurrency, rate_limit, http...)."""
        from getm_tui.engine import Options

        base: dict[str, Any] = {
            "concurrency": self.concurrency,
            "part_size": self.part_size,
            "retries": self.retries,
            "retry_base": self.retry_base,
            "retry_cap": self.retry_cap,
            "check_archives": self.check_archives,
            "http": self.http(),
        }
        return Options(**{**base, **given})

    # A finished file is on disk (synced) before it counts as done; false is for scratch disks (README).
    sync: bool = True
    # FTP and SFTP servers (engine/sources/base.py Access says what each means).
    ftp_tls: str = "auto"  # explicit TLS on ftp://: "auto", "require" or "off" (ftps:// is implicit TLS)
    sftp_key_file: str = ""  # a private key; "" uses the SSH agent's keys and ~/.ssh's usual files
    sftp_password: str = ""  # used when the URL holds none; never shown
    sftp_known_hosts: str = dataclasses.field(
        default_factory=lambda: os.path.expanduser("~/.ssh/known_hosts")
    )
    sftp_host_keys: str = "reject"  # a host known_hosts does not list: "reject", "accept" or "add" it

    def access(self, anonymous: bool = False) -> Any:
        """How a download authenticates (buckets, FTP, SFTP) by these settings."""
        from getm_tui.engine.sources.base import Access

        return Access(
            anonymous=anonymous,
            ftp_tls=self.ftp_tls,
            sftp_key_file=self.sftp_key_file,
            sftp_password=self.sftp_password,
            sftp_known_hosts=self.sftp_known_hosts,
            sftp_host_keys=self.sftp_host_keys,
        )

    def http(self) -> Any:
        from getm_tui.engine import HTTPSettings

        return HTTPSettings(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            verify_tls=self.verify_tls,
            max_redirects=self.max_redirects,
            allow_insecure_redirect=self.allow_insecure_redirect,
        )


_SIZES = {"part_size", "rate_limit"}
_CHOICES = {"ftp_tls": ("auto", "require", "off"), "sftp_host_keys": ("reject", "accept", "add")}
_SECRETS = {"sftp_password"}  # taken as written (no ~ expansion) and never echoed
_ADDRESSES = {"metrics"}


def split_address(text: str) -> tuple[str, int]:
    """(host, port) from HOST:PORT ([::1]:PORT for IPv6); ValueError naming what is wrong."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9464), got {text!r}")
    return host, int(port)


_MIN = {
    "max_active": 1,
    "max_connections": 1,
    "concurrency": 1,
    "part_size": 64 * 1024,
    "retries": 0,
    "rate_limit": 0,
    "max_redirects": 0,
    "max_connections_per_host": 0,
}


def _coerce(key: str, value: Any, kind: Any) -> Any:
    try:
        if key in _SIZES:
            out: Any = parse_size(value)
        elif kind in (bool, "bool"):
            if isinstance(value, bool):
                out = value
            elif str(value).lower() in ("1", "true", "yes", "on"):
                out = True
            elif str(value).lower() in ("0", "false", "no", "off"):
                out = False
            else:
                raise ValueError(f"expected true or false, got {value!r}")
        elif kind in (int, "int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(f"expected a whole number, got {value!r}")
            try:
                out = int(value)
            except ValueError:
                raise ValueError(f"expected a whole number, got {value!r}") from None
        elif kind in (float, "float"):
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {value!r}")
            try:
                out = float(value)
            except ValueError:
                raise ValueError(f"expected a number, got {value!r}") from None
            if not math.isfinite(out):
                raise ValueError(f"expected a finite number, got {value!r}")
            if out <= 0:
                raise ValueError("must be greater than 0")
        elif key == "queue":
            out = _queue_location(value)
        elif key in _SECRETS:
            if not isinstance(value, str):
                raise ValueError("expected a string")
            out = value
        elif key in _CHOICES:
            if value not in _CHOICES[key]:
                raise ValueError(f"expected one of {', '.join(_CHOICES[key])}, got {value!r}")
            out = value
        else:
            if not isinstance(value, str) or not value:
                raise ValueError(f"expected a non-empty string, got {value!r}")
            out = os.path.expanduser(value)
        if key in _ADDRESSES:
            split_address(out)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}: {e}") from None
    if key in _MIN and out < _MIN[key]:
        raise ConfigError(f"{key}: must be at least {_MIN[key]}, got {value!r}")
    return out


def _queue_location(value: Any) -> str:
    """A connection string, passed on as it is (cli.common checks what it names); never echoed: it may
    hold a password."""
    if not isinstance(value, str):
        raise ValueError("expected a PostgreSQL connection string")
    return value.strip()


def _types() -> dict[str, Any]:
    return {f.name: f.type for f in fields(Settings) if f.name != "mirrors"}


def _mirrors(value: Any, cfg_path: str) -> dict[str, Any]:
    from getm_tui.mirror.spec import parse_tables

    try:
        return parse_tables(value)
    except ValueError as e:
        raise ConfigError(f"{cfg_path}: {e}") from None


def load(
    path: str | None = None, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Settings from defaults, the config file, the environment and command-line overrides, in that order."""
    env = os.environ if environ is None else environ
    types = _types()
    values: dict[str, Any] = {}
    explicit = path or env.get(ENV_PREFIX + "CONFIG")
    cfg_path = explicit or default_config_path()
    if os.path.exists(cfg_path):
        # The TOML parser loads only when there is a file to read (most users have none).
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            with open(cfg_path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{cfg_path}: not valid TOML: {e}") from None
        except OSError as e:
            raise ConfigError(f"{cfg_path}: cannot read: {e.strerror}") from None
        for key, value in data.items():
            if key == "mirror":
                values["mirrors"] = _mirrors(value, cfg_path)
                continue
            if key not in types:
                raise ConfigError(f"{cfg_path}: unknown key {key!r} (known: {', '.join(types)})")
            values[key] = _coerce(key, value, types[key])
    elif explicit:
        raise ConfigError(f"config file not found: {cfg_path}")
    for key in types:
        raw = env.get(ENV_PREFIX + key.upper())
        if raw is not None and raw != "":
            try:
                values[key] = _coerce(key, raw, types[key])
            except ConfigError as e:
                raise ConfigError(f"environment {ENV_PREFIX}{key.upper()}: {e}") from None
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value, types[key])
    return Settings(**values)
