"""The engine with little shared memory and with a full disk, in a private mount namespace.

Each case runs the engine in a subprocess under `unshare -m`, which mounts a small tmpfs (over /dev/shm,
or as the target directory) that only that subprocess sees. The fault server runs here, in the test
process; the namespace shares the network, so 127.0.0.1 reaches it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.faultserver import FaultServer

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("unshare") is None,
        reason="needs root and unshare(1) to mount tmpfs",
    ),
]

MiB = 1024 * 1024
REPO = str(Path(__file__).resolve().parents[2])
BIG = random.Random(31).randbytes(40 * MiB + 333)
EIGHT = random.Random(32).randbytes(8 * MiB + 5)

# Run by the subprocess. The __main__ guard matters: workers are started with the spawn method, which
# imports this file again in each of them.
HELPER = textwrap.dedent(
    """
    import json, logging, os, sys

    def run(case):
        from getm_tui.engine import Options, download

        target = case["target"]
        out = {"name": case.get("name")}
        try:
            r = download(case["url"], target, concurrency=case["concurrency"], checksum=case.get("checksum"),
                         options=Options(retry_base=0.01, retries=3))
            out.update(ok=True, path=r.path, size=r.size, verdict=r.verdict, connections=r.connections)
        except Exception as e:
            out.update(ok=False, error=type(e).__name__, message=str(e))
        out["listing"] = sorted(os.listdir(target))
        out["shm_left"] = [n for n in os.listdir("/dev/shm") if n.startswith("getm-")]
        return out

    if __name__ == "__main__":
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
        cases = json.loads(sys.argv[1])
        print(json.dumps([run(c) for c in cases]))
    """
)


def run_in_namespace(tmp_path: Path, mount: str, cases: list[dict]) -> tuple[list[dict], str]:
    """Run `cases` in a subprocess whose mount namespace has `mount` (a shell command) done first."""
    script = tmp_path / "engine_case.py"
    script.write_text(HELPER)
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f'{mount} && exec "$0" "$@"',
            sys.executable,
            str(script),
            json.dumps(cases),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("shm_size", ["16m", "64m"])
def test_little_shared_memory(fault_server: FaultServer, tmp_path, shm_size) -> None:
    """A checksum to verify in order keeps parts in shared memory until they are hashed: with little of it
    the slots shrink (and then the connections), with a warning, and nothing is fetched twice."""
    url = fault_server.add("/big.bin", BIG)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    case = {
        "url": url,
        "target": str(out_dir),
        "concurrency": 8,
        "checksum": "md5:" + hashlib.md5(BIG).hexdigest(),
    }
    [result], stderr = run_in_namespace(tmp_path, f"mount -t tmpfs -o size={shm_size} tmpfs /dev/shm", [case])
    assert result["ok"], result
    assert result["verdict"] == "verified"
    assert result["listing"] == ["big.bin"]
    assert result["shm_left"] == []
    assert (out_dir / "big.bin").read_bytes() == BIG
    assert result["connections"] >= 2  # shrunk, but still parallel
    if shm_size == "16m":
        assert "little shared memory" in stderr
    # Every byte was fetched once (besides the probe's abandoned body): shrinking did not refetch.
    res = fault_server.resource("/big.bin")
    parts = [r for r in res.requests if r.range != "bytes=0-"]
    assert sum(r.body_bytes for r in parts) == len(BIG)
    assert fault_server.errors == []


@pytest.mark.slow
def test_unordered_download_needs_no_shared_memory(fault_server: FaultServer, tmp_path) -> None:
    """Without a checksum to feed in order, workers write through buffers of their own: a /dev/shm too
    small for a single slot still gets every connection, and no warning."""
    url = fault_server.add("/big.bin", BIG)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    case = {"url": url, "target": str(out_dir), "concurrency": 8}
    [result], stderr = run_in_namespace(tmp_path, "mount -t tmpfs -o size=64k tmpfs /dev/shm", [case])
    assert result["ok"], result
    assert (out_dir / "big.bin").read_bytes() == BIG
    assert result["connections"] == 8
    assert "shared memory" not in stderr
    assert fault_server.errors == []


@pytest.mark.slow
def test_full_disk(fault_server: FaultServer, tmp_path) -> None:
    sized = fault_server.add("/sized/f.bin", EIGHT)
    chunked = fault_server.add("/chunked/f.bin", EIGHT, chunked=True)
    small = fault_server.add("/small/ok.bin", EIGHT[:100_000])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cases = []
    for name, url in (("sized", sized), ("chunked", chunked)):
        for concurrency in (None, 4):
            target = mnt / f"{name}-{concurrency}"
            cases.append(
                {
                    "name": f"{name}-{concurrency}",
                    "url": url,
                    "target": str(target),
                    "concurrency": concurrency,
                }
            )
    # Something that fits still works on the same small filesystem, after the failures.
    cases.append({"name": "fits", "url": small, "target": str(mnt), "concurrency": 4})
    mkdirs = " && ".join(f"mkdir {c['target']}" for c in cases[:-1])
    results, stderr = run_in_namespace(tmp_path, f"mount -t tmpfs -o size=4m tmpfs {mnt} && {mkdirs}", cases)
    for result in results[:-1]:
        assert not result["ok"], result
        assert result["error"] == "NoSpaceError", result
        assert "no space" in result["message"].lower()
        # Nothing under the final name, and the space is given back: nothing of it could be resumed.
        assert result["listing"] == [], result
        assert result["shm_left"] == []
    fits = results[-1]
    assert fits["ok"], fits
    assert "ok.bin" in fits["listing"]
    assert "Traceback" not in stderr
    assert fault_server.errors == []
