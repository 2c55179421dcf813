"""A throwaway PostgreSQL for tests: the distribution's server, in a temporary directory, on loopback.

CI runs as root and PostgreSQL refuses to run as root, so the server runs as an unprivileged user (the
`postgres` account the package creates, else `nobody`), in a directory it owns. It is started once per
test session; each test gets a database of its own. `stop()` and `start()` again on the same directory
stand in for a database that goes away and comes back.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SUPERUSER = "getm"
PASSWORD = "s3cret-pw"  # the superuser's password, for tests of password handling and redaction


def bindir() -> str:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[-3]))
    if not found:
        raise RuntimeError("no PostgreSQL server installed (apt-get install postgresql); .ci/run installs it")
    return os.path.dirname(found[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unprivileged() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


def _demote(user: pwd.struct_passwd | None) -> Callable[[], None] | None:
    if user is None:
        return None

    def become() -> None:
        os.setgid(user.pw_gid)
        os.setgroups([])
        os.setuid(user.pw_uid)

    return become


@dataclass
class PostgresServer:
    """One server: `url(db)` is a libpq URL for a database on it (with the superuser's password)."""

    root: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="getm-pg-"))
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.user = _unprivileged()
        self.bin = bindir()
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        os.chmod(self.root, 0o755)
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True, preexec_fn=_demote(self.user), cwd=self.root)

    def init(self) -> PostgresServer:
        pwfile = os.path.join(self.root, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self.user is not None:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        self._run(
            os.path.join(self.bin, "initdb"), "-D", self.data, "-U", SUPERUSER, "--pwfile", pwfile,
            "--auth-host=scram-sha-256", "--auth-local=trust", "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        os.unlink(pwfile)
        return self

    def start(self) -> PostgresServer:
        """Start (or start again) and wait until it takes connections."""
        with open(self.log, "ab") as log:
            if self.user is not None:
                os.chown(self.log, self.user.pw_uid, self.user.pw_gid)
            self.process = subprocess.Popen(
                [
                    os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                    "-c", "max_connections=200",
                ],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=_demote(self.user), cwd=self.root,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {self._tail()}")
            ready = subprocess.run(
                [os.path.join(self.bin, "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                capture_output=True,
            )
            if ready.returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not take connections within 30 s: {self._tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended, then the server exits)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through the local socket (trust) and return psql's unaligned output."""
        out = subprocess.run(
            [os.path.join(self.bin, "psql"),
             "-h", self.root, "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-XAtq", "-c", sql],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _tail(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
