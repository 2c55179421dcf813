"""Helpers for tests that drive `getm-tui` processes against a queue in a temporary data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def env_for(data_dir: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "GETM_TUI_DATA_DIR": data_dir, "GETM_TUI_CONFIG": "", **extra}


def cli(
    data_dir: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "getm_tui", *args],
        capture_output=True,
        text=True,
        env={**env_for(data_dir), **(env or {})},
        timeout=timeout,
    )


def start(data_dir: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A background `getm-tui` in its own session, so a test can kill its whole process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "getm_tui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env_for(data_dir), **(env or {})},
        start_new_session=True,
    )


def jobs(data_dir: str) -> list[dict[str, Any]]:
    out = cli(data_dir, "ls", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll until `predicate` returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def add(data_dir: str, *args: str) -> list[int]:
    out = cli(data_dir, "add", *args)
    assert out.returncode == 0, out.stderr
    return [int(x) for x in out.stdout.split()]
