"""A full disk through the queue: real `getm-tui` processes writing to a tiny tmpfs in a private mount
namespace. The job fails with a clear reason, in `ls`, `show` and its history, leaves nothing under the final
name, and once space is freed `retry` plus `run --once` completes it, byte for byte.

The namespace is kept alive by a sleeping process; commands that must see the tmpfs run in it through
`nsenter`, and the test reads files in it through /proc/PID/root. The fault server runs here; the namespace
shares the network.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.runner_util import add, cli, env_for, jobs

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("nsenter")),
        reason="needs root, unshare(1) and nsenter(1) to mount a tmpfs in a private namespace",
    ),
]

MiB = 1024 * 1024
DATA = random.Random(41).randbytes(6 * MiB + 123)


class MountNamespace:
    """A private mount namespace with `mount` (a shell command) done in it, alive until close()."""

    def __init__(self, mount: str) -> None:
        self.proc = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"{mount} && echo ready && exec sleep 600",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()  # returns when the mount is done, or at EOF if it failed
        assert ready.strip() == "ready", "mount in the namespace failed"

    def path(self, inside: str | Path) -> Path:
        """How the test sees a path inside the namespace."""
        return Path(f"/proc/{self.proc.pid}/root") / str(inside).lstrip("/")

    def cli(self, data_dir: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", "-t", str(self.proc.pid), "-m", "--", sys.executable, "-m", "getm_tui", *args],
            capture_output=True,
            text=True,
            env=env_for(data_dir),
            timeout=timeout,
        )

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    ns = MountNamespace(f"mount -t tmpfs -o size=8m tmpfs {mnt}")
    try:
        yield ns, mnt
    finally:
        ns.close()


@pytest.mark.parametrize(
    "chunked",
    [False, True],
    ids=["sized-refused-up-front", "chunked-fills-the-disk-mid-write"],
)
@pytest.mark.slow
def test_full_disk_fails_the_job_clearly_and_retry_completes_it(
    fault_server, tmp_path, tiny_disk, chunked
) -> None:
    ns, mnt = tiny_disk
    data_dir = str(tmp_path / "q")  # the queue is on the real disk; only the downloads are short of space
    url = fault_server.add("/big.bin", DATA, chunked=chunked)
    filler = ns.path(mnt / "filler")
    filler.write_bytes(b"\0" * (4 * MiB))  # leaves about 4 MiB: not enough for 6 MiB
    fs = os.statvfs(ns.path(mnt))
    assert fs.f_blocks * fs.f_frsize == 8 * MiB  # the tmpfs, as the namespace sees it
    assert not (mnt / "filler").exists()  # and only the namespace
    [job_id] = add(data_dir, url, "-d", str(mnt))

    first = ns.cli(data_dir, "run", "--once")
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr + first.stdout
    assert f"job {job_id}: failed (no space left on device" in first.stdout
    [job] = jobs(data_dir)
    assert job["state"] == "failed"
    assert "no space left on device" in job["error"].lower()
    # Refused before a byte was fetched (a known size), or stopped when a write failed (no size known).
    assert ("writing" if chunked else "needs 6291579 bytes") in job["error"]
    assert job["bytes_done"] == 0  # the partial file was removed: nothing is claimed as kept
    table = cli(data_dir, "ls")
    assert table.returncode == 0 and "no space left on device" in table.stdout.lower()
    show = cli(data_dir, "show", str(job_id), "--json")
    assert show.returncode == 0, show.stderr
    history = json.loads(show.stdout)["events"]
    assert any(e["kind"] == "error" and "no space left" in e["message"].lower() for e in history), history
    # Nothing under the final name, and no partial file holding on to the little space there is.
    assert sorted(os.listdir(ns.path(mnt))) == ["filler"]

    filler.unlink()  # the user frees space
    again = cli(data_dir, "retry", str(job_id))
    assert again.returncode == 0 and again.stderr == "", again.stderr
    second = ns.cli(data_dir, "run", "--once")
    assert second.returncode == 0, second.stderr
    [job] = jobs(data_dir)
    assert (job["state"], job["error"], job["attempts"]) == ("done", None, 1)
    assert sorted(os.listdir(ns.path(mnt))) == ["big.bin"]
    assert ns.path(mnt / "big.bin").read_bytes() == DATA
    assert fault_server.errors == []
