"""Case (k)'s floors as commands that really run: the engine alone, http.client and libcurl's multi
interface each fetch a list of small files into the output directory under the names (c) checks, from a
real server, and the case puts them beside getm-tui and curl as floors, not peers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from benchlib.cases import QUEUE_ACTIVE, Case, Invocation, Tools, build_cases, floor_processes, out_dir
from benchlib.data import DataFile, Dataset

from tests.helpers.faultserver import FaultServer
from tests.tools.test_bench_cases import run

FILES = 12


def _served(fault_server: FaultServer) -> dict[str, bytes]:
    data = {f"f{i:02d}.bin": os.urandom(1000 + i) for i in range(FILES)}
    for name, body in data.items():
        fault_server.add(f"/small/{name}", body)
    return data


def _case_k(tmp_path: Path, fault_server: FaultServer) -> Case:
    small = tuple(DataFile(f"small/f{i:02d}.bin", 1000 + i, "") for i in range(FILES))
    big = DataFile("big.bin", 1, "")
    dataset = Dataset(tmp_path / "www", big, big, small, ())
    getm_tui = str(Path(sys.executable).with_name("getm-tui"))
    tools = Tools(getm_tui, "curl", None, None, None, None, pycurl=sys.executable)
    (k,) = build_cases(["k"], tools, dataset, fault_server.url, tmp_path)
    return k


@pytest.mark.slow
def test_both_floors_fetch_every_file_under_its_name(fault_server: FaultServer, tmp_path) -> None:
    k = _case_k(tmp_path, fault_server)
    data = _served(fault_server)
    floors = [c for c in k.contenders if c.limit]
    assert [c.label.split(",")[0] for c in floors] == [
        "engine alone",
        "engine alone",
        "engine alone",
        "http.client",
        "libcurl multi (pycurl)",
    ]
    for floor in floors:
        run_dir = tmp_path / floor.label.replace(" ", "-").replace(",", "")
        out_dir(run_dir).mkdir(parents=True)
        done = run(floor.build(run_dir))
        assert done.returncode == 0, done.stderr
        got = {p.name: p.read_bytes() for p in out_dir(run_dir).iterdir()}
        assert got == data, floor.label


def test_case_k_is_getm_tui_beside_its_floors_and_curl(fault_server: FaultServer, tmp_path) -> None:
    k = _case_k(tmp_path, fault_server)
    roles = [(c.label, c.ours, c.limit) for c in k.contenders]
    hosts = floor_processes()
    shape = f"{hosts} processes x {QUEUE_ACTIVE // hosts}"
    assert roles == [
        ("getm-tui add+run --once (defaults)", True, False),
        (f"engine alone, {hosts} processes x 1 thread", False, True),
        (f"engine alone, {shape} threads", False, True),
        ("engine alone, 1 process x 1 thread", False, True),
        (f"http.client, {shape} threads", False, True),
        (f"libcurl multi (pycurl), {shape}", False, True),
        (f"curl -Z --parallel-max {QUEUE_ACTIVE}", False, False),
    ]
    assert len(k.files) == FILES
    shapes = [c.build(tmp_path / "run").argv[-2:] for c in k.contenders if c.label.startswith("engine")]
    assert shapes == [[str(hosts), "1"], [str(hosts), str(QUEUE_ACTIVE // hosts)], ["1", "1"]]


def test_a_floor_that_meets_an_error_exits_non_zero(fault_server: FaultServer, tmp_path) -> None:
    k = _case_k(tmp_path, fault_server)
    url_list = tmp_path / "missing.txt"
    url_list.write_text(fault_server.url("/not-there.bin") + "\n")
    for floor in (c for c in k.contenders if c.limit):
        inv = floor.build(tmp_path / "run")
        out_dir(tmp_path / "run").mkdir(parents=True, exist_ok=True)
        argv = [url_list.as_posix() if a.endswith("urls-k.txt") else a for a in inv.argv]
        done = run(Invocation(argv, inv.env))
        assert done.returncode != 0, floor.label
