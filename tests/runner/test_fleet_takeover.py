"""A job taken over on another host resumes from its partial file only when that host sees the file and it
holds the bytes the record says; otherwise it starts over and its history says why.

Runners of one test share this machine's filesystem, so "another host" is a resume record that names
another host as its writer: what the fleet's queue records when a runner elsewhere saved it.
"""

from __future__ import annotations

import os
import random
import signal

import pytest

from getm_tui.engine import control
from getm_tui.engine.crc import crc32c
from getm_tui.engine.files import part_path
from getm_tui.queue.interface import open_queue
from getm_tui.runner.takeover import resumable
from tests.helpers.faultserver import FaultServer
from tests.helpers.kill_util import gets, is_probe, served
from tests.helpers.runner_util import cli, wait_for
from tests.runner.test_fleet import ENV, _add, _file_sha, _recorded, _runner, _sha

MiB = 1024 * 1024
URL = "http://127.0.0.1:1/data/f.bin"


def _written(tmp_path, data: bytes, parts: list[tuple[int, int]], host: str) -> dict:
    """A record of `parts` (start, bytes done) of `data` in tmp_path/f.bin.getm-part, written on `host`."""
    with open(part_path(str(tmp_path / "f.bin")), "wb") as f:
        f.write(data)
    rows = [[s, s + 100, d, crc32c(data[s : s + d])] for s, d in parts]
    return {**control.record(URL, len(data), '"v"', [], str(tmp_path / "f.bin")), "parts": rows, "host": host}


def test_a_record_of_this_host_is_resumed_without_reading_the_file(tmp_path):
    record = _written(tmp_path, b"x" * 200, [(0, 60)], os.uname().nodename)
    os.unlink(part_path(str(tmp_path / "f.bin")))
    assert resumable(record, URL, str(tmp_path)) == (record, "")


def test_a_record_of_another_host_is_resumed_when_the_bytes_match(tmp_path):
    data = random.Random(1).randbytes(200)
    record = _written(tmp_path, data, [(0, 60), (100, 40)], "elsewhere")
    assert resumable(record, URL, str(tmp_path)) == (record, "")


def test_another_hosts_record_starts_over_when_the_bytes_differ_or_the_file_is_missing(tmp_path):
    data = random.Random(2).randbytes(200)
    record = _written(tmp_path, data, [(0, 60), (100, 40)], "elsewhere")
    with open(part_path(str(tmp_path / "f.bin")), "r+b") as f:
        f.seek(130)
        f.write(b"\0")
    fresh, why = resumable(record, URL, str(tmp_path))
    assert fresh == {**record, "parts": []}
    assert why.startswith("starting over: the partial file") and "(from byte 100)" in why
    os.unlink(part_path(str(tmp_path / "f.bin")))
    fresh, why = resumable(record, URL, str(tmp_path))
    assert fresh == {**record, "parts": []} and "is not on this host" in why and "elsewhere" in why


def _partly_downloaded(fault_server: FaultServer, postgres_url: str, tmp_path, data: bytes):
    """A job that a runner got partway through, then stopped (its progress saved, the job queued)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    url = fault_server.add("/takeover/f.bin", data, rate_limit=1 * MiB)
    [job] = _add(tmp_path, postgres_url, out_dir, url)
    first = _runner(tmp_path, "host-a", postgres_url)
    try:
        wait_for(lambda: _recorded(postgres_url, job)[0] >= 2 * MiB or first.poll() is not None, 60)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    with open_queue(postgres_url) as q:
        assert q.get(job).state == "queued"
    return job, url, out_dir


def _as_if_written_elsewhere(postgres_url: str, job: int) -> list[tuple[int, int]]:
    """Make the job's record say another host wrote it; the intervals it holds."""
    with open_queue(postgres_url) as q:  # a plain connection, not a runner: the record is kept as given
        record = q.load_resume(job)
        assert record is not None and record["host"] == os.uname().nodename
        q.save_resume(job, {**record, "host": "elsewhere"})
    return _recorded(postgres_url, job)[1]


def _finish_elsewhere(tmp_path, postgres_url: str) -> None:
    res = cli(
        str(tmp_path / "host-b"), "run", "--once", "--json", env={**ENV, "GETM_TUI_QUEUE": postgres_url}
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("spoiled", "said"),
    [("missing", "is not on this host"), ("differs", "does not hold the bytes its record says")],
)
def test_a_job_taken_over_where_its_partial_file_is_not_usable_starts_over_and_says_so(
    fault_server: FaultServer, postgres_url, tmp_path, spoiled: str, said: str
):
    data = random.Random(3).randbytes(8 * MiB + 5)
    job, url, out_dir = _partly_downloaded(fault_server, postgres_url, tmp_path, data)
    kept = _as_if_written_elsewhere(postgres_url, job)
    assert kept  # the first runner recorded parts: a resume is what is at stake
    partial = part_path(str(out_dir / "f.bin"))
    if spoiled == "missing":
        os.unlink(partial)  # the other host's disk is not this one's
    else:
        with open(partial, "r+b") as f:  # another file at that path on this host
            start, end = kept[0]
            f.seek(start)
            f.write(bytes(end - start))
    resource = fault_server.resource(url)
    resource.configure(rate_limit=None)
    before = len(resource.requests)
    _finish_elsewhere(tmp_path, postgres_url)
    assert _file_sha(str(out_dir / "f.bin")) == _sha(data)  # not the zeros the record would have kept
    fetched = sum(b - a for a, b in (served(r) for r in gets(resource, before) if not is_probe(r)))
    assert fetched == len(data)  # all of it again: nothing the record says was trusted
    with open_queue(postgres_url) as q:
        history = [e.message for e in q.events(job)]
        assert q.get(job).state == "done"
    assert any(m.startswith("starting over: the partial file") and said in m for m in history), history
