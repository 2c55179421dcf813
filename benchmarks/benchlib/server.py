"""A private nginx for the benchmark: its own prefix, config and port, so it never touches another nginx
on the machine, and it is stopped by the pid we started whatever happens to the run.

`/slow/` serves the files at 20 MiB/s per connection (case b); `/trickle/` at 1 MiB/s, for jobs that must
stay active for minutes while something else is measured (case h's memory with a queue behind them)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

CONFIG = """\
worker_processes 2;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  client_body_temp_path {prefix}/tmp; proxy_temp_path {prefix}/tmp; fastcgi_temp_path {prefix}/tmp;
  uwsgi_temp_path {prefix}/tmp; scgi_temp_path {prefix}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {docroot};
    location /slow/ {{ alias {docroot}/; limit_rate {slow_rate}; }}
    location /trickle/ {{ alias {docroot}/; limit_rate {trickle_rate}; }}
    autoindex {autoindex};
  }}
}}
"""


def free_port() -> int:
    """A port the kernel just handed out, so it is very likely still free when nginx binds it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Nginx:
    """nginx in the foreground (`daemon off`) under our Popen, so its pid is ours to stop."""

    def __init__(
        self,
        binary: str,
        prefix: Path,
        docroot: Path,
        slow_rate: str = "20m",
        trickle_rate: str = "1m",
        autoindex: bool = False,
    ) -> None:
        self.binary = binary
        self.prefix = prefix
        self.docroot = docroot
        self.slow_rate = slow_rate
        self.trickle_rate = trickle_rate
        self.autoindex = autoindex  # directory listings (the mirror's tests read them)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self, attempts: int = 3) -> None:
        """Start on a free port; retry on another port if one was taken between choosing and binding."""
        for d in ("logs", "tmp"):
            (self.prefix / d).mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            if self._start_once(free_port()):
                return
        raise RuntimeError(f"nginx did not start; see {self.prefix / 'logs' / 'error.log'}")

    def _start_once(self, port: int) -> bool:
        self.port = port
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            CONFIG.format(
                prefix=self.prefix,
                port=port,
                docroot=self.docroot,
                slow_rate=self.slow_rate,
                trickle_rate=self.trickle_rate,
                autoindex="on" if self.autoindex else "off",
            )
        )
        argv = [self.binary, "-p", str(self.prefix), "-e", str(self.prefix / "logs" / "error.log")]
        log = open(self.prefix / "logs" / "stderr.log", "ab")  # noqa: SIM115 - closed with the process
        # A session of its own: a Ctrl-C meant for the harness must not take the server down mid-run.
        self.proc = subprocess.Popen(
            [*argv, "-c", str(conf)], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if _listening(port):
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> None:
        """SIGTERM (nginx's fast shutdown) to our master's pid, SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
