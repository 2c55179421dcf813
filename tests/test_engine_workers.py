"""How fetch workers start: forked directly from a process with one thread, else by the fork server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Run in a fresh interpreter: pytest's process has threads of its own (fixtures' servers), and the point is
# what a process with one thread, such as `getm-tui get`, does.
SCRIPT = textwrap.dedent(
    """
    import json, os, socket, threading, time
    from getm_tui.engine import http
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
    with WorkerPool(http.HTTPSettings(), size=1) as pool:
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


def test_a_single_threaded_process_forks_workers_that_hold_none_of_its_sockets() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["parent_of_worker"] == result["me"]  # forked here, not by the fork server
    assert result["listener_in_worker"] is False  # the inherited copy of the listening socket was dropped
    assert result["parent_of_second"] != result["me"]  # a threaded process goes through the fork server
