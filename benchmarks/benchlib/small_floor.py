"""Case (k)'s floors: (c)'s small files fetched without getm-tui's runner, to show where its time goes.

    python small_floor.py engine|httpclient|pycurl URL_LIST OUT PROCESSES PER_PROCESS

- `engine`: getm_tui.engine.download() over the list in PROCESSES processes of PER_PROCESS threads each,
  the job hosts' shape without the supervisor, the queue or their messages. Run with the python beside
  the getm-tui measured (it imports that getm_tui).
- `httpclient`: the same per-file work over the standard library's http.client, PER_PROCESS threads in
  each process with a keep-alive connection each: what the HTTP exchange costs in Python, without the
  engine's bookkeeping (its name claim, space reservation, records and verifier).
- `pycurl`: libcurl's multi interface in PROCESSES processes of PER_PROCESS transfers each, every body
  written to a partial file, its crc computed and the file renamed from Python: what the same per-file
  work costs with the HTTP exchange in C. Run with a python that imports pycurl.

Both end with one syncfs of the output's file system (`sync -f OUT`), as the runner's group commit ends
a batch of finished files. The files are named after the last part of their URL, as (c) checks them.
Standalone on purpose: it imports nothing of benchlib, so any interpreter can run it.
"""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from typing import Any


class _Record:
    """A job's resume record kept in memory, as the runner keeps it in its queue."""

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        return self.record

    def save(self, record: dict[str, Any]) -> None:
        self.record = record

    def clear(self) -> None:
        self.record = None


def _in_threads(what: str, urls: list[str], threads: int, fetch: Callable[[list[str]], None]) -> None:
    """`fetch` each thread's share of `urls`; the first error ends the process with a non-zero code."""
    failed: list[str] = []

    def work(share: list[str]) -> None:
        try:
            fetch(share)
        except BaseException as e:  # noqa: BLE001 -- reported by the process's exit code
            failed.append(repr(e))

    pool = [threading.Thread(target=work, args=(urls[i::threads],)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if failed:
        raise SystemExit(f"{what}: {failed[0]}")


def _engine(urls: list[str], out: str, threads: int) -> None:
    from getm_tui.config import Settings
    from getm_tui.engine import download
    from getm_tui.engine.sources.http_session import make_session

    settings = Settings()
    options = settings.engine_options(sync="off")

    def fetch(share: list[str]) -> None:
        session = make_session(settings.http())
        try:
            for url in share:
                download(url, out, options=options, session=session, store=_Record())
        finally:
            session.close()

    _in_threads("engine", urls, threads, fetch)


def _httpclient(urls: list[str], out: str, threads: int) -> None:
    import http.client
    from urllib.parse import urlsplit

    def fetch(share: list[str]) -> None:
        conn: http.client.HTTPConnection | None = None
        try:
            for url in share:
                where = urlsplit(url)
                if conn is None:
                    conn = http.client.HTTPConnection(where.hostname or "", where.port)
                conn.request("GET", where.path)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    raise OSError(f"{url}: HTTP {resp.status}")
                _write(out, url.rsplit("/", 1)[-1], body)
        finally:
            if conn is not None:
                conn.close()

    _in_threads("http.client", urls, threads, fetch)


def _pycurl(urls: list[str], out: str, transfers: int) -> None:
    import pycurl

    multi = pycurl.CurlMulti()
    idle = [pycurl.Curl() for _ in range(transfers)]
    bodies: dict[Any, tuple[str, io.BytesIO]] = {}
    todo = list(reversed(urls))
    while todo or bodies:
        while idle and todo:
            url, handle, body = todo.pop(), idle.pop(), io.BytesIO()
            handle.setopt(pycurl.URL, url)
            handle.setopt(pycurl.WRITEDATA, body)
            handle.setopt(pycurl.FAILONERROR, True)
            bodies[handle] = (url, body)
            multi.add_handle(handle)
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        _, done, failed = multi.info_read()
        for handle, _code, message in failed:
            raise SystemExit(f"pycurl: {bodies[handle][0]}: {message}")
        for handle in done:
            multi.remove_handle(handle)
            url, body = bodies.pop(handle)
            _write(out, url.rsplit("/", 1)[-1], body.getvalue())
            idle.append(handle)
        if not done:
            multi.select(1.0)


def _write(out: str, name: str, data: bytes) -> None:
    """What a finished small file costs on our side: written at a partial name, checked, renamed."""
    partial = os.path.join(out, name + ".part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    zlib.crc32(data)
    os.rename(partial, os.path.join(out, name))


MODES: dict[str, Callable[[list[str], str, int], None]] = {
    "engine": _engine,
    "httpclient": _httpclient,
    "pycurl": _pycurl,
}
# Imported before the processes fork, so that they share it, as the job hosts share the supervisor's.
PRELOAD = {
    "engine": ("getm_tui.config", "getm_tui.engine", "getm_tui.engine.sources.http_session"),
    "httpclient": ("http.client",),
    "pycurl": (),
}


def main(argv: list[str]) -> int:
    mode, url_list, out, processes, per_process = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    with open(url_list) as f:
        urls = [line.strip() for line in f if line.strip()]
    for module in PRELOAD[mode]:
        importlib.import_module(module)
    children = []
    for i in range(processes):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                MODES[mode](urls[i::processes], out, per_process)
            except SystemExit as e:
                sys.stderr.write(f"{e}\n")
                code = 1
            sys.stderr.flush()
            os._exit(code)
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    if any(codes):
        return 1
    return subprocess.run(["sync", "-f", out], check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
