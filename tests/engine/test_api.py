"""The engine's public surface: how download()'s and urlopen()'s keyword arguments combine with an Options,
and the names getm_tui.engine exports (loaded lazily, yet visible to type checkers)."""

from __future__ import annotations

import ast
import importlib
import random
from pathlib import Path

import pytest

import getm_tui.engine
from getm_tui.engine import Options, download, urlopen
from tests.helpers.engine_util import read
from tests.helpers.faultserver import FaultServer, Resource

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("engine_hygiene")]

MiB = 1024 * 1024
DATA = random.Random(3).randbytes(8 * MiB)  # eight 1 MiB parts: one per connection at 8


def part_connections(res: Resource) -> set[int]:
    """The connections the parts were asked for on (every GET but the probe's)."""
    return {r.connection_id for r in res.requests if r.method == "GET" and r.range != "bytes=0-"}


@pytest.mark.slow
def test_the_concurrency_of_options_is_not_overridden_by_a_keyword_not_given(
    fault_server: FaultServer, tmp_path
) -> None:
    url = fault_server.add("/eight.bin", DATA)
    result = download(url, str(tmp_path), options=Options(concurrency=8, part_size=MiB))
    assert read(result.path) == DATA
    assert result.connections == 8
    assert len(part_connections(fault_server.resource(url))) == 8


def test_a_keyword_given_replaces_what_options_hold(fault_server: FaultServer, tmp_path) -> None:
    url = fault_server.add("/two.bin", DATA)
    result = download(url, str(tmp_path), concurrency=2, options=Options(concurrency=8, part_size=MiB))
    assert read(result.path) == DATA
    assert result.connections == 2
    assert len(part_connections(fault_server.resource(url))) == 2


def test_overwrite_from_options_is_kept_and_a_keyword_replaces_it(
    fault_server: FaultServer, tmp_path
) -> None:
    url = fault_server.add("/same.bin", DATA[:1000])
    (tmp_path / "same.bin").write_bytes(b"old")
    replaced = download(url, str(tmp_path), options=Options(overwrite=True))
    assert replaced.path == str(tmp_path / "same.bin")
    kept = download(url, str(tmp_path), overwrite=False, options=Options(overwrite=True))
    assert kept.path == str(tmp_path / "same (1).bin")
    assert read(replaced.path) == read(kept.path) == DATA[:1000]


@pytest.mark.slow
def test_urlopen_takes_its_concurrency_from_options(fault_server: FaultServer) -> None:
    url = fault_server.add("/stream.bin", DATA)
    with urlopen(url, options=Options(concurrency=8, part_size=MiB)) as reader:
        assert b"".join(bytes(view) for view in reader) == DATA
    assert len(part_connections(fault_server.resource(url))) == 8


# -- the names --------------------------------------------------------------------------------------------


def test_every_public_name_loads_from_the_module_it_is_listed_under() -> None:
    exports = getm_tui.engine._EXPORTS
    assert sorted(getm_tui.engine.__all__) == sorted(exports)
    for name, module in exports.items():
        value = getattr(getm_tui.engine, name)
        assert value is getattr(importlib.import_module(f"getm_tui.engine.{module}"), name), name


def test_type_checkers_see_every_public_name() -> None:
    """Names loaded by the module's __getattr__ are invisible to a type checker unless imported under
    TYPE_CHECKING as well, each from where __getattr__ loads it."""
    tree = ast.parse(Path(getm_tui.engine.__file__).read_text())
    [block] = [
        node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    ]
    seen = {
        alias.asname or alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == {name: f"getm_tui.engine.{module}" for name, module in getm_tui.engine._EXPORTS.items()}
