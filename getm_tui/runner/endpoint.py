"""The supervisor's Unix socket: where it is, the key a client must know, and how to hang up on one.

Both files live in the data dir beside the queue, owner-only, so only the queue's owner can steer it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from multiprocessing.connection import Connection

SOCKET_NAME = "supervisor.sock"
AUTHKEY_NAME = "supervisor.key"


def socket_path(data_dir: str) -> str:
    return os.path.join(data_dir, SOCKET_NAME)


def authkey(data_dir: str) -> bytes:
    """The socket's authkey: random, created once, readable by the owner only."""
    path = os.path.join(data_dir, AUTHKEY_NAME)
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = os.urandom(32)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    os.replace(path + ".tmp", path)
    return key


def hang_up(conn: Connection) -> None:
    """Shut the connection's socket down, so a thread blocked in `recv` on it gets EOF now: closing the
    descriptor alone does not wake it (Linux), and a supervisor we detach from may keep its end open."""
    with contextlib.suppress(OSError, ValueError):
        sock = socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)  # a dup: same socket
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
