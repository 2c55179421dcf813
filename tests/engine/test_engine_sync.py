"""Options.sync: who makes a finished file durable, and what a finished record saved before any sync proves.

A record saved before the file's bytes were synced ("caller", "off") does not prove they reached the disk;
a power cut may leave the right size with other bytes. The next attempt must then look at the bytes
(their crc32c), not only at the size, before it reports the file finished.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from getm_tui.engine import Options, download
from getm_tui.engine.target import file_crc
from tests.helpers.faultserver import FaultServer
from tests.helpers.stores import MemoryStore

pytestmark = pytest.mark.usefixtures("engine_hygiene")

MiB = 1024 * 1024


def _gets(fault_server: FaultServer, url: str) -> int:
    return len(fault_server.resource(url).requests)


@pytest.mark.parametrize("sync", ["here", "caller", "off"])
def test_every_sync_mode_writes_the_whole_file(fault_server: FaultServer, tmp_path, sync) -> None:
    data = os.urandom(3 * MiB + 5)
    url = fault_server.add("/f.bin", data)
    store = MemoryStore()
    result = download(
        url, str(tmp_path), concurrency=4, options=Options(part_size=MiB, sync=sync), store=store
    )
    assert Path(result.path).read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]
    assert store.record is not None and store.record["finished"]["synced"] is (sync == "here")


def test_an_unsynced_finished_file_with_its_bytes_intact_is_not_fetched_again(
    fault_server: FaultServer, tmp_path
) -> None:
    """A kill after the rename, before the caller's sync and bookkeeping: the bytes are all there."""
    data = os.urandom(2 * MiB)
    url = fault_server.add("/kept.bin", data)
    store = MemoryStore()
    opts = Options(part_size=MiB, sync="caller")
    first = download(url, str(tmp_path), concurrency=2, options=opts, store=store)
    asked = _gets(fault_server, url)
    again = download(url, str(tmp_path), concurrency=2, options=opts, store=store)
    assert _gets(fault_server, url) == asked
    assert (again.path, again.crc32c) == (first.path, first.crc32c)
    assert f"{file_crc(first.path):08x}" == first.crc32c


def test_an_unsynced_finished_file_whose_bytes_were_lost_is_fetched_again(
    fault_server: FaultServer, tmp_path
) -> None:
    """What a power cut can leave of a file renamed before it was synced: its size, with zeros (the
    preallocated extents) where its bytes were. It must not be reported finished."""
    data = os.urandom(2 * MiB)
    url = fault_server.add("/lost.bin", data)
    store = MemoryStore()
    opts = Options(part_size=MiB, sync="caller")
    first = download(url, str(tmp_path), concurrency=2, options=opts, store=store)
    with open(first.path, "r+b") as f:
        f.write(bytes(len(data)))
    asked = _gets(fault_server, url)
    again = download(url, str(tmp_path), concurrency=2, options=opts, store=store)
    assert _gets(fault_server, url) > asked
    assert Path(again.path).read_bytes() == data


@pytest.mark.parametrize("size", [100_000, 3 * MiB])  # read in this process; through workers
def test_commit_by_the_caller_leaves_the_verified_file_at_its_partial_name(
    fault_server: FaultServer, tmp_path, size
) -> None:
    """Options.commit "caller": the finished record comes back in Result.pending, not saved, and the file
    waits at its partial name; once the caller has kept the record and moved the file, a second call
    finds it finished without fetching."""
    from getm_tui.engine.files import part_path
    from getm_tui.engine.target import commit

    data = os.urandom(size)
    url = fault_server.add("/late.bin", data)
    store = MemoryStore()
    opts = Options(part_size=MiB, sync="caller", commit="caller")
    result = download(url, str(tmp_path), concurrency=2, options=opts, store=store)
    assert result.path == str(tmp_path / "late.bin")
    assert sorted(os.listdir(tmp_path)) == ["late.bin.getm-part"]
    assert Path(part_path(result.path)).read_bytes() == data
    assert store.record is not None and "finished" not in store.record  # the caller's to keep
    assert result.pending is not None and result.pending["finished"]["crc32c"] == result.crc32c

    store.save(result.pending)
    assert commit(part_path(result.path), result.path, overwrite=False) == result.path
    asked = _gets(fault_server, url)
    again = download(url, str(tmp_path), concurrency=2, options=opts, store=store)
    assert _gets(fault_server, url) == asked
    assert (again.path, again.pending) == (result.path, None)
    assert Path(again.path).read_bytes() == data


@pytest.mark.parametrize("size", [100_000, 3 * MiB])
def test_a_finished_record_kept_before_the_caller_moved_the_file_needs_no_fetch(
    fault_server: FaultServer, tmp_path, size
) -> None:
    """Options.commit "caller", killed after the caller kept the finished record and before it moved the
    file to its name: the next call moves the file itself, without a request."""
    data = os.urandom(size)
    url = fault_server.add("/moved-late.bin", data)
    store = MemoryStore()
    opts = Options(part_size=MiB, sync="caller", commit="caller")
    result = download(url, str(tmp_path), concurrency=2, options=opts, store=store)
    store.save(result.pending)  # ... and killed here, before the move
    asked = _gets(fault_server, url)
    again = download(url, str(tmp_path), concurrency=2, options=opts, store=store)
    assert _gets(fault_server, url) == asked
    assert again.path == result.path and again.crc32c == result.crc32c
    assert sorted(os.listdir(tmp_path)) == ["moved-late.bin"]
    assert Path(again.path).read_bytes() == data


@pytest.mark.parametrize("size", [100_000, 3 * MiB])
def test_a_finished_record_whose_partial_file_lost_its_bytes_is_fetched_again(
    fault_server: FaultServer, tmp_path, size
) -> None:
    """Options.commit "caller", the finished record kept, then a power cut before the caller's sync: the
    partial file has its size and zeros where its bytes were. The record's parts prove nothing of what is
    on disk, so they are not resumed: the file is fetched again, whole."""
    from getm_tui.engine.files import part_path

    data = os.urandom(size)
    url = fault_server.add("/lost-late.bin", data)
    store = MemoryStore()
    opts = Options(part_size=MiB, sync="caller", commit="caller")
    result = download(url, str(tmp_path), concurrency=2, options=opts, store=store)
    store.save(result.pending)
    with open(part_path(result.path), "r+b") as f:
        f.write(bytes(size))
    asked = _gets(fault_server, url)
    again = download(url, str(tmp_path), concurrency=2, options=opts, store=store)
    assert _gets(fault_server, url) > asked
    assert Path(part_path(again.path)).read_bytes() == data
    assert again.resumed == 0
