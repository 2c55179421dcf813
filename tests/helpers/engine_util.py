"""What every engine test checks after itself: no shared memory of ours left, no worker left running."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator


def shm_names() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("getm-")}


@contextlib.contextmanager
def no_leftovers() -> Iterator[None]:
    shm_before = shm_names()
    children_before = {p.pid for p in multiprocessing.active_children()}
    yield
    assert shm_names() - shm_before == set()
    left = [p for p in multiprocessing.active_children() if p.pid not in children_before]
    assert left == [], f"worker processes left running: {left}"


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_under(root: str, path: str, data: bytes) -> str:
    """`data` written at `path` under `root` (a test server's directory), with its directories; its path."""
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    return full
