"""A real SFTP server for the tests: asyncssh on 127.0.0.1, its event loop in a thread of its own.

It has a fresh ed25519 host key, one user who logs in with a password or with a client key the test can
write out, and a root directory the test fills (chroot). It records what the engine did: the SSH sessions
opened and the first offset read from each opened file, which shows parts fetched over connections of
their own, each from its own first byte.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import asyncssh

from tests.helpers.engine_util import write_under

USER, PASSWORD = "bob", "sftp pass"


@dataclass
class SFTPRecord:
    sessions: int = 0
    first_reads: list[int] = field(default_factory=list)  # the first offset read from each opened file
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Auth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD


def _sftp_class(record: SFTPRecord) -> type[asyncssh.SFTPServer]:
    class Recording(asyncssh.SFTPServer):
        def __init__(self, chan: Any, chroot: str) -> None:
            super().__init__(chan, chroot=chroot)
            self._read: set[int] = set()
            with record.lock:
                record.sessions += 1

        def read(self, file_obj: Any, offset: int, size: int) -> Any:
            if id(file_obj) not in self._read:
                self._read.add(id(file_obj))
                with record.lock:
                    record.first_reads.append(offset)
            return super().read(file_obj, offset, size)

    return Recording


class SFTPTestServer:
    """`start()` it, put files under `root`, fetch `url(path)`, `stop()` it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.record = SFTPRecord()
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "", user: str = USER, password: str | None = None) -> str:
        login = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
        return f"sftp://{login}@127.0.0.1:{self.port}/{path}"

    def put(self, path: str, data: bytes) -> str:
        return write_under(self.root, path, data)

    def known_hosts_line(self, key: asyncssh.SSHKey | None = None) -> str:
        """The line of a known_hosts file for this server (with another key when `key` is given)."""
        public = (key or self.host_key).export_public_key("openssh").decode().split()[:2]
        return f"[127.0.0.1]:{self.port} {' '.join(public)}\n"

    def write_client_key(self, path: str) -> str:
        self.client_key.write_private_key(path)
        os.chmod(path, 0o600)
        return path

    def start(self) -> SFTPTestServer:
        ready = threading.Event()
        sftp_class = _sftp_class(self.record)
        root = self.root
        authorized = asyncssh.import_authorized_keys(self.client_key.export_public_key("openssh").decode())

        async def listen() -> None:
            self._server = await asyncssh.listen(
                "127.0.0.1",
                0,
                server_host_keys=[self.host_key],
                server_factory=_Auth,
                authorized_client_keys=authorized,
                sftp_factory=lambda chan: sftp_class(chan, root),
                allow_scp=False,
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(listen())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="sftp-server")
        self._thread.start()
        assert ready.wait(15), "the SFTP server did not start"
        return self

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()
            self._loop.stop()

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(close()))
        if self._thread is not None:
            self._thread.join(timeout=15)
            assert not self._thread.is_alive(), "the SFTP server did not stop"
        self._loop.close()
