"""Names reserved when a job is claimed (runner/names.py): a small job claims its file name with no round
trip to the supervisor, and still no two jobs of the queue ever write one file.

The supervisor runs in this process on a real queue file, its hosts fetch from the fault server; what is
checked is where the files land and what the queue holds, and, for the round trip, that no Save reached
the supervisor at all.
"""

from __future__ import annotations

import os
import random

import pytest

from getm_tui.config import Settings
from getm_tui.engine import Options, download
from getm_tui.engine.control import NameTaken, claim
from getm_tui.queue.interface import open_queue
from getm_tui.queue.records import JobSpec
from getm_tui.runner import hostmsg as H
from getm_tui.runner.names import HeldNames, settle
from getm_tui.runner.supervisor import Supervisor
from tests.helpers.faultserver import FaultServer
from tests.helpers.runner_util import add, jobs
from tests.helpers.stores import MemoryStore

pytestmark = pytest.mark.timeout(120)

KiB = 1024


def _run(data_dir: str, out_dir: str) -> list[H.Save]:
    """Run the queue to its end in this process; the Saves its hosts sent."""
    sup = Supervisor(data_dir, Settings(download_dir=out_dir, max_active=8), once=True, listen=False)
    saves: list[H.Save] = []
    save = sup._save

    def counted(host, msg, answer=True):  # type: ignore[no-untyped-def]
        saves.append(msg)
        save(host, msg, answer)

    sup._save = counted  # type: ignore[method-assign]
    assert sup.serve() == 0
    return saves


@pytest.mark.slow
def test_small_jobs_take_their_names_without_a_round_trip(fault_server: FaultServer, tmp_path) -> None:
    rng = random.Random(5)
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    files = {fault_server.add(f"/s/{i}.bin", rng.randbytes(rng.randrange(1, 64 * KiB))): i for i in range(12)}
    add(data_dir, *files, "-d", str(out_dir))
    assert _run(data_dir, str(out_dir)) == []
    assert sorted(os.listdir(out_dir)) == sorted(f"{i}.bin" for i in range(12))
    for url, i in files.items():
        assert (out_dir / f"{i}.bin").read_bytes() == fault_server.resource(url).data
    assert {j["state"] for j in jobs(data_dir)} == {"done"}


@pytest.mark.slow
def test_jobs_that_want_one_name_get_one_file_each(fault_server: FaultServer, tmp_path) -> None:
    """Two URLs ending in the same name, and a third whose server names it so (Content-Disposition): the
    first reserves the name, the others take `same (1).bin` and `same (2).bin`, each with its own bytes."""
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    urls = [
        fault_server.add("/a/same.bin", b"a" * 3000),
        fault_server.add("/b/same.bin", b"b" * 3000),
        fault_server.add(
            "/c/other", b"c" * 3000, headers={"Content-Disposition": 'attachment; filename="same.bin"'}
        ),
    ]
    add(data_dir, *urls, "-d", str(out_dir))
    _run(data_dir, str(out_dir))
    assert sorted(os.listdir(out_dir)) == ["same (1).bin", "same (2).bin", "same.bin"]
    contents = sorted((out_dir / name).read_bytes()[:1] for name in os.listdir(out_dir))
    assert contents == [b"a", b"b", b"c"]
    assert {j["state"] for j in jobs(data_dir)} == {"done"}


def test_a_name_is_reserved_only_while_free_and_held_by_one_job(tmp_path) -> None:
    q = open_queue(str(tmp_path / "q"))
    try:
        specs: list[JobSpec] = [
            {"url": "http://h/x/a.bin", "directory": str(tmp_path)},
            {"url": "http://h/y/a.bin", "directory": str(tmp_path)},
            {"url": "http://h/z/b.bin", "directory": str(tmp_path)},
        ]
        first, second, third = (q.get(i) for i in q.add_many(specs))
        (tmp_path / "b.bin.getm-part").write_bytes(b"")  # another download's partial file
        names = HeldNames()
        reserved = names.reserve(q, first)
        assert reserved == {**claim(first.url, str(tmp_path / "a.bin")), "reserved": True}
        assert q.load_resume(first.id) == reserved
        assert names.reserve(q, second) is None  # the first job holds a.bin
        assert names.reserve(q, third) is None  # b.bin is on disk
        # An engine's claim of a held name is refused; of a free one, it moves the job's hold there.
        assert not names.allows(second.id, str(tmp_path), claim(second.url, str(tmp_path / "a.bin")))
        assert names.allows(first.id, str(tmp_path), claim(first.url, str(tmp_path / "c.bin")))
        assert names.allows(second.id, str(tmp_path), claim(second.url, str(tmp_path / "a.bin")))
        names.release(q, second.id)
        assert names.reserve(q, second) is not None
    finally:
        q.close()


def test_a_reservation_left_behind_becomes_a_claim_or_nothing(tmp_path) -> None:
    """What a killed run leaves: a reservation whose partial file exists is the job's claim (its next
    attempt resumes there); one with nothing on disk is dropped."""
    q = open_queue(str(tmp_path / "q"))
    try:
        specs: list[JobSpec] = [
            {"url": "http://h/started.bin", "directory": str(tmp_path)},
            {"url": "http://h/unstarted.bin", "directory": str(tmp_path)},
        ]
        started, unstarted = (q.get(i) for i in q.add_many(specs))
        names = HeldNames()
        names.reserve(q, started)
        names.reserve(q, unstarted)
        (tmp_path / "started.bin.getm-part").write_bytes(b"x")
        settle(q, [started.id, unstarted.id])
        assert q.load_resume(started.id) == claim(started.url, str(tmp_path / "started.bin"))
        assert q.load_resume(unstarted.id) is None
    finally:
        q.close()


class _Refusing(MemoryStore):
    """A store whose owner runs other downloads that hold the names `taken`."""

    def __init__(self, *taken: str) -> None:
        super().__init__()
        self.taken = taken

    def save(self, record):  # type: ignore[no-untyped-def]
        if record.get("name") in self.taken and not record.get("parts"):
            raise NameTaken(record["name"])
        super().save(record)


def test_the_engine_takes_the_next_free_name_when_its_claim_is_refused(fault_server, tmp_path) -> None:
    url = fault_server.add("/f.bin", b"f" * 5000)
    result = download(url, str(tmp_path), store=_Refusing("f.bin"), options=Options(sync="off"))
    assert os.path.basename(result.path) == "f (1).bin"
    assert sorted(os.listdir(tmp_path)) == ["f (1).bin"]


def test_a_second_refused_claim_takes_the_next_number_of_the_name_asked_for(fault_server, tmp_path) -> None:
    """`f (1).bin` refused too: the next is `f (2).bin`, not a number after a number (`f (1) (1).bin`)."""
    url = fault_server.add("/f.bin", b"f" * 5000)
    store = _Refusing("f.bin", "f (1).bin")
    result = download(url, str(tmp_path), store=store, options=Options(sync="off"))
    assert os.path.basename(result.path) == "f (2).bin"
    assert sorted(os.listdir(tmp_path)) == ["f (2).bin"]


def test_a_reserved_name_owns_no_partial_file_yet(fault_server, tmp_path) -> None:
    """A partial file already under the reserved name is another download's: never resumed or
    overwritten, whatever the record says."""
    url = fault_server.add("/r.bin", b"r" * 5000)
    (tmp_path / "r.bin.getm-part").write_bytes(b"someone else's")
    store = MemoryStore()
    store.record = {**claim(url, str(tmp_path / "r.bin")), "reserved": True}
    result = download(url, str(tmp_path), store=store, options=Options(sync="off"))
    assert os.path.basename(result.path) == "r (1).bin"
    assert (tmp_path / "r.bin.getm-part").read_bytes() == b"someone else's"


def test_a_file_that_came_at_a_reserved_name_is_never_written_over(fault_server, tmp_path) -> None:
    """The engine takes a reserved name without looking (the reservation found it free): a file that
    came there since is met by the commit, which moves the download to the next free name instead."""
    url = fault_server.add("/r.bin", b"r" * 5000)
    store = MemoryStore()
    store.record = {**claim(url, str(tmp_path / "r.bin")), "reserved": True}
    (tmp_path / "r.bin").write_bytes(b"came since")
    result = download(url, str(tmp_path), store=store, options=Options(sync="off"))
    assert os.path.basename(result.path) == "r (1).bin"
    assert (tmp_path / "r.bin").read_bytes() == b"came since"
    assert (tmp_path / "r (1).bin").read_bytes() == b"r" * 5000
    assert sorted(os.listdir(tmp_path)) == ["r (1).bin", "r.bin"]
