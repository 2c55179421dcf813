"""A real FTP server for the tests: pyftpdlib on 127.0.0.1 in a thread, with faults to order.

One anonymous read-only login and one user with a password share a root directory the test fills. The
server records what the engine did to it (each RETR with its REST offset and control connection, the
commands it saw) and can misbehave: cut a data connection after some bytes, refuse REST,
refuse EPSV or MLSD. FTPS comes explicit (AUTH TLS) or implicit (TLS from the first byte) with a
certificate from a throwaway CA (trustme) whose file the test hands to the client as SSL_CERT_FILE.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler, TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer

from tests.helpers.engine_util import write_under

USER, PASSWORD = "alice", "s3cret pass"
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)


@dataclass
class Record:
    """What the clients did, and the faults still to come (changed by the test between downloads)."""

    retrs: list[int] = field(default_factory=list)  # the REST offset of each RETR (0 without REST)
    retr_clients: set[int] = field(default_factory=set)  # the control connections (client ports) of RETRs
    users: list[str] = field(default_factory=list)  # each USER's name
    commands: list[str] = field(default_factory=list)  # each command's verb, in order
    cut_after: int | None = None  # the next data connection is closed after this many bytes
    cuts: int = 0
    refuse_rest: bool = False
    refuse_epsv: bool = False
    refuse_mlsd: bool = False
    rate: int = 0  # bytes per second per data connection (plain FTP only); 0: as fast as it goes
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handlers(record: Record, tls: bool) -> tuple[type[Any], type[Any]]:
    base_ftp: type[Any] = TLS_FTPHandler if tls else FTPHandler
    base_dtp: type[Any] = TLS_DTPHandler if tls else ThrottledDTPHandler

    class Data(base_dtp):  # type: ignore[misc, valid-type]
        def __init__(self, sock: Any, cmd_channel: Any) -> None:
            super().__init__(sock, cmd_channel)
            if not tls:
                self.write_limit = record.rate
            self._cut_at: int | None = None
            self._cut_taken = False

        def send(self, data: Any) -> int:
            if not self._cut_taken:  # what the RETR this connection serves took (see Control)
                self._cut_taken = True
                self._cut_at, self.cmd_channel.cut_at = self.cmd_channel.cut_at, None
            if self._cut_at is not None and self.tot_bytes_sent >= self._cut_at:
                with record.lock:
                    record.cuts += 1
                self._cut_at = None
                self.close()
                return 0
            if self._cut_at is not None:
                data = data[: max(1, self._cut_at - self.tot_bytes_sent)]
            sent: int = super().send(data)
            return sent

    class Control(base_ftp):  # type: ignore[misc, valid-type]
        dtp_handler = Data
        use_sendfile = False  # bytes go through Data.send, where the cuts happen
        auth_failed_timeout = 0.01  # a refused login is answered at once, not after 3 s
        # Taken from the record by a RETR: its data connection may have been accepted before the test
        # asked for a cut, after an earlier RETR was answered.
        cut_at: int | None = None

        def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
            with record.lock:
                record.commands.append(cmd)
            if cmd == "REST" and record.refuse_rest:
                self.respond("502 Command REST not implemented.")
                return
            if cmd == "EPSV" and record.refuse_epsv:
                self.respond("500 Command EPSV not understood.")
                return
            if cmd == "MLSD" and record.refuse_mlsd:
                self.respond("500 Command MLSD not understood.")
                return
            if cmd == "USER":
                with record.lock:
                    record.users.append(arg)
            if cmd == "RETR":
                with record.lock:
                    record.retrs.append(self._restart_position)
                    record.retr_clients.add(self.remote_port)
                    self.cut_at, record.cut_after = record.cut_after, None
            super().pre_process_command(line, cmd, arg)

    return Control, Data


class FTPTestServer:
    """`start()` it, put files under `root`, fetch `url(path)`; `stop()` it. `tls`: None, "explicit" or
    "implicit" (then `certfile` is the server's certificate and key in one PEM file)."""

    def __init__(self, root: str, tls: str | None = None, certfile: str | None = None) -> None:
        self.root = root
        self.tls = tls
        self.record = Record()
        control, _data = _handlers(self.record, tls is not None)
        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(root)
        authorizer.add_user(USER, PASSWORD, root, perm="elr")
        control.authorizer = authorizer
        control.passive_ports = None
        if tls is not None:
            control.certfile = certfile
            control.ssl_context = None
            if tls == "implicit":
                control = _implicit(control)
        self.handler = control
        self.server = FTPServer(("127.0.0.1", 0), control)
        self.port: int = self.server.socket.getsockname()[1]
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def url(self, path: str = "", user: str | None = None, password: str | None = None) -> str:
        from urllib.parse import quote

        scheme = "ftps" if self.tls == "implicit" else "ftp"
        login = ""
        if user is not None:
            login = (
                quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "") + "@"
            )
        return f"{scheme}://{login}127.0.0.1:{self.port}/{path}"

    def put(self, path: str, data: bytes) -> str:
        return write_under(self.root, path, data)

    def start(self) -> FTPTestServer:
        self._thread = threading.Thread(target=self._serve, daemon=True, name="ftp-server")
        self._thread.start()
        return self

    def _serve(self) -> None:
        poll = self.server.ioloop.poll
        while not self._stopping.is_set():
            poll(0.05)
            self.server.ioloop.sched.poll()
        self.server.close_all()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            assert not self._thread.is_alive(), "the FTP server did not stop"


def _implicit(control: type[Any]) -> type[Any]:
    """A TLS handler that secures the control connection before its first byte (ftps://, port 990)."""

    class Implicit(control):  # type: ignore[misc, valid-type]
        def handle(self) -> None:
            self.secure_connection(self.ssl_context)
            super().handle()

        def ftp_PROT(self, line: str) -> None:
            self._pbsz = True  # PBSZ is implied by implicit TLS
            super().ftp_PROT(line)

    return Implicit
