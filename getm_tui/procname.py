"""The kernel's name of this process: what `ps`, `top` and /proc/PID/comm show.

The supervisor and its job hosts are forked from (or spawned as) Python processes with the runner's
command line; named, a user (and a test) can tell them apart.
"""

from __future__ import annotations

import contextlib
import ctypes

_PR_SET_NAME = 15


def name_process(name: str) -> None:
    """Set the name (the kernel keeps 15 bytes); nothing happens where prctl is missing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15])
