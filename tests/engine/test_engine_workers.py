"""How fetch workers start (forked directly from a process with one thread, else by the fork server),
and what they keep from their parent and from one download to the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from getm_tui.engine import download
from getm_tui.engine.sources import http_session
from tests.helpers.faultserver import FaultServer
from tests.helpers.runner_util import wait_for

# Run in a fresh interpreter: pytest's process has threads of its own (fixtures' servers), and the point is
# what a process with one thread, such as `getm-tui get`, does.
SCRIPT = textwrap.dedent(
    """
    import json, os, socket, threading, time
    from getm_tui.engine.sources import http_session
    from getm_tui.engine.workers import WorkerPool

    def socket_inodes(pid):
        out = set()
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if target.startswith("socket:"):
                out.add(target)
        return out

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    mine = os.readlink(f"/proc/self/fd/{listener.fileno()}")
    result = {}
    with WorkerPool(http_session.HTTPSettings(), size=1) as pool:
        worker = pool.workers[0].process
        result["parent_of_worker"] = int(open(f"/proc/{worker.pid}/stat").read().split(") ")[1].split()[1])
        # The worker drops inherited sockets as it starts: wait for that, up to a deadline.
        deadline = time.monotonic() + 10
        while mine in socket_inodes(worker.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        result["listener_in_worker"] = mine in socket_inodes(worker.pid)
        # With another thread running, the next worker comes from the fork server instead.
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
        pool.grow(2)
        second = pool.workers[1].process
        result["parent_of_second"] = int(open(f"/proc/{second.pid}/stat").read().split(") ")[1].split()[1])
        stop.set()
    result["me"] = os.getpid()
    print(json.dumps(result))
    """
)


@pytest.mark.slow
def test_a_single_threaded_process_forks_workers_that_hold_none_of_its_sockets() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["parent_of_worker"] == result["me"]  # forked here, not by the fork server
    assert result["listener_in_worker"] is False  # the inherited copy of the listening socket was dropped
    assert result["parent_of_second"] != result["me"]  # a threaded process goes through the fork server


def test_small_downloads_in_a_row_share_one_keep_alive_connection(
    fault_server: FaultServer, tmp_path
) -> None:
    """A queue of small files reuses its session's connection: one TCP handshake, not one a file."""
    blobs = {f"/s{i}.bin": os.urandom(64 * 1024 + i) for i in range(20)}
    urls = {path: fault_server.add(path, data) for path, data in blobs.items()}
    before = fault_server.connections_accepted
    session = http_session.make_session(http_session.HTTPSettings())
    try:
        for path, url in urls.items():
            result = download(url, str(tmp_path / path[1:]), session=session)
            assert Path(result.path).read_bytes() == blobs[path]
    finally:
        session.close()
    assert fault_server.connections_accepted - before == 1


# Workers that never send a request of their own: whatever reaches the server was sent by the coordinator.
SEND_AHEAD_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from getm_tui.engine import fetch, messages, workers
    from getm_tui.engine.sources import http_session

    def silent_worker(conn, *args):
        try:
            while True:
                conn.recv()
        except (EOFError, OSError):
            os._exit(0)

    fetch.worker_main = silent_worker
    url, size, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    step = size // parts
    ranges = [(("Range", f"bytes={i * step}-{(i + 1) * step - 1}"),) for i in range(parts)]
    Task = messages.Task
    tasks = [Task(i, None, url, r, 0, 0, 0, step, step, i * step, None) for i, r in enumerate(ranges)]
    with workers.WorkerPool(http_session.HTTPSettings()) as pool:
        started = pool.start(tasks, owner=None)
        print(len(started), [w.task.task_id for w in started], flush=True)
        sys.stdin.read()  # until the test has looked at the server
    """
)


@pytest.mark.slow
def test_a_forking_coordinator_sends_its_workers_first_requests_before_they_start(
    fault_server: FaultServer,
) -> None:
    """Every first request is on the wire before its worker runs: the server's time to first byte overlaps
    the forks instead of following them (see WorkerPool.start)."""
    size, parts = 4 * 1024 * 1024, 4
    url = fault_server.add("/ahead.bin", os.urandom(size))
    proc = subprocess.Popen(
        [sys.executable, "-c", SEND_AHEAD_SCRIPT, url, str(size), str(parts)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"{parts} [0, 1, 2, 3]"
        resource = fault_server.resource(url)
        wait_for(lambda: len(resource.requests) == parts, timeout=10)
        step = size // parts
        assert sorted(r.range for r in resource.requests) == [
            f"bytes={i * step}-{(i + 1) * step - 1}" for i in range(parts)
        ]
        assert len({r.connection_id for r in resource.requests}) == parts
    finally:
        _, err = proc.communicate("", timeout=30)
    assert proc.returncode == 0, err


def _get_in_parts(url: str, target: Path) -> bytes:
    """`getm-tui get -c 4` in 1 MiB parts, as a process of its own (one thread: it forks its workers);
    what it saved."""
    out = subprocess.run(
        [sys.executable, "-m", "getm_tui", "get", url, "-c", "4", "--part-size", "1M", "-o", str(target)],
        capture_output=True,
        text=True,
        env={**os.environ, "GETM_TUI_CONFIG": ""},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return target.read_bytes()


@pytest.mark.slow
def test_a_forked_download_reads_each_request_sent_ahead_once(fault_server: FaultServer, tmp_path) -> None:
    """`getm-tui get -c 4` (one thread: it forks its workers): each part is asked for once, on the
    connection the coordinator opened, and the file is whole."""
    data = os.urandom(4 * 1024 * 1024 + 5)
    url = fault_server.add("/whole.bin", data)
    before = fault_server.connections_accepted
    assert _get_in_parts(url, tmp_path / "whole.bin") == data
    requests = fault_server.resource(url).requests
    assert requests[0].range == "bytes=0-"  # the probe
    parts = [r.range for r in requests[1:]]
    assert sorted(parts) == [f"bytes={i << 20}-{min((i + 1) << 20, len(data)) - 1}" for i in range(5)]
    assert fault_server.connections_accepted - before == 5  # the probe's, then one per worker


@pytest.mark.parametrize(
    "faults",
    [
        {"drop_after": 50_000, "drop_times": 3, "drop_rst": True},
        {"wrong_content_range": 1, "wrong_content_range_times": 3},
    ],
    ids=["reset", "wrong-content-range"],
)
@pytest.mark.slow
def test_a_fault_on_a_request_sent_ahead_is_retried(fault_server: FaultServer, tmp_path, faults) -> None:
    """The first requests of a forked `get` are sent by the coordinator: when their answers go wrong, the
    workers that inherited them retry like any other request."""
    data = os.urandom(4 * 1024 * 1024)
    url = fault_server.add("/faulty.bin", data, **faults)
    assert _get_in_parts(url, tmp_path / "faulty.bin") == data
    requests = fault_server.resource(url).requests
    hit = [r for r in requests[1:] if r.faults]  # the faults met the parts' requests, not only the probe
    assert hit, [(r.range, r.faults) for r in requests]
    assert len(requests) > 5  # so some part was asked for again
