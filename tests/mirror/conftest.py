"""The mirror's servers: Python's http.server and the benchmarks' nginx (autoindex on), each serving a tree
in a temporary directory, both on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.benchlib.server import Nginx


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tree_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(the served directory, its URL) from http.server: a page per directory, no sizes nor dates."""
    root = tmp_path / "remote"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def nginx_tree(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(the served directory, its URL) from nginx's autoindex: pages with sizes and minute dates."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    # Outside tmp_path, whose parents are private: nginx's workers run as another user when we are root.
    with tempfile.TemporaryDirectory(prefix="getm-www-") as www:
        os.chmod(www, 0o755)
        root = Path(www)
        with Nginx(binary, tmp_path / "nginx", root, autoindex=True) as server:
            yield root, server.url("/")
