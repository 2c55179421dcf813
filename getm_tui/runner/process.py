"""This process and the kernel: its name, its death with its parent, and its exit without teardown.

The supervisor and its job hosts are forked from (or spawned as) Python processes with the runner's
command line; named, a user (and a test) can tell them apart. A command, the supervisor and a host leave
with os._exit once their work is recorded (the interpreter's teardown only kept the front end waiting),
and `run` forks its supervisor: before either, what Python buffered for stdout and stderr is written, or
it would be lost (or, in a fork, written twice).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def _prctl(option: int, arg: Any) -> None:
    """Linux's prctl; nothing happens where it is missing. ctypes is imported here: `add` and `get` never
    need it, and it costs milliseconds at every start."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, arg)


def name_process(name: str) -> None:
    """Set what `ps`, `top` and /proc/PID/comm show (the kernel keeps 15 bytes)."""
    _prctl(_PR_SET_NAME, name.encode()[:15])


def die_with_parent(parent: int) -> None:
    """Be killed when the parent process dies, however it dies; leave at once if it already has."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        os._exit(0)


def flush_std_streams() -> None:
    """Write what Python holds for stdout and stderr (a closed or broken stream is let go)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
