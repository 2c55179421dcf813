"""The last pass of each saved mirror (when, whether it worked, what it came to), kept in the data dir
so that `getm-tui mirror --status` shows it and `getm-tui run` knows when each mirror is next due after
a restart. One small JSON file per mirror, replaced whole by a rename: the runner and a `mirror NAME` run
by hand may write at once, and a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class LastPass:
    at: float  # seconds since the epoch
    ok: bool
    result: str


def _path(data_dir: str, name: str) -> str:
    return os.path.join(data_dir, "mirrors", f"{name}.json")


def record(data_dir: str, name: str, ok: bool, result: str) -> None:
    path = _path(data_dir, name)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump({"at": time.time(), "ok": ok, "result": result}, f)
    os.replace(temporary, path)


def last(data_dir: str, name: str) -> LastPass | None:
    """The mirror's last pass, or None when it has none (or its record cannot be read)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        with open(_path(data_dir, name), encoding="utf-8") as f:
            data = json.load(f)
        return LastPass(float(data["at"]), bool(data["ok"]), str(data["result"]))
    return None
