"""Fixtures of the app's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from getm_tui.config import Settings
from tests.helpers.app_util import Env, MiB
from tests.helpers.faultserver import FaultServer


@pytest.fixture
def env(fault_server: FaultServer, tmp_path: Path) -> Env:
    out = tmp_path / "out"
    out.mkdir()
    # Settings are given whole: no user config file or GETM_TUI_* variable reaches the test.
    settings = Settings(download_dir=str(out), part_size=1 * MiB, concurrency=2, max_active=3, retries=1)
    return Env(fault_server, str(tmp_path / "data"), out, settings)
