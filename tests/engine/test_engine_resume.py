"""Cancel part-way, then resume: the second run fetches only what the first did not keep.

The server throttles each connection so a cancel from the progress callback lands mid-download; the
server's byte count across both runs shows that kept bytes were not fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time

import crc32c
import pytest

from getm_tui.engine import Cancelled, HTTPSettings, Options, download
from tests.helpers.engine_util import read
from tests.helpers.faultserver import FaultServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("engine_hygiene")]

MiB = 1024 * 1024
DATA = random.Random(21).randbytes(8 * MiB + 999)
NEW = random.Random(22).randbytes(len(DATA))
OPTS = Options(part_size=MiB, retries=3, retry_base=0.01)
# Bytes per second per connection in the first run. Workers report (and see a cancel) every 1 MiB they
# read, so with four connections and 1 MiB parts the cancel after 2 MiB must come while the second four
# parts are in flight.
SLOW = {None: 4 * MiB, 1: 4 * MiB, 4: 2 * MiB}
FAST = 16 * MiB  # the second run: still throttled, so an abandoned probe body costs little


def cancel_after(nbytes: int) -> tuple[threading.Event, object]:
    """A cancel event and a progress callback that sets it once more than `nbytes` are done."""
    cancel = threading.Event()

    def progress(p) -> None:
        if p.done > nbytes:
            cancel.set()

    return cancel, progress


def interrupted(fault_server: FaultServer, tmp_path, concurrency, checksum=None) -> tuple[str, dict]:
    """Start a throttled download, cancel it after 2 MiB; returns its URL and its resume record."""
    url = fault_server.add("/f.bin", DATA, rate_limit=SLOW[concurrency])
    cancel, progress = cancel_after(2 * MiB)
    with pytest.raises(Cancelled):
        download(
            url,
            str(tmp_path),
            concurrency=concurrency,
            checksum=checksum,
            options=OPTS,
            progress=progress,
            cancel=cancel,
        )
    assert cancel.is_set()
    assert sorted(os.listdir(tmp_path)) == ["f.bin.getm-part", "f.bin.getm-resume"]
    with open(tmp_path / "f.bin.getm-resume") as f:
        record = json.load(f)
    kept = sum(done for _start, _end, done, _crc in record["parts"])
    assert 0 < kept < len(DATA)
    # The record never claims more than the file holds, and what it claims is the right data, with the
    # crc32c of exactly those bytes (kept by the coordinator, or reported by the worker that wrote them).
    part = read(str(tmp_path / "f.bin.getm-part"))
    for start, _end, done, crc in record["parts"]:
        assert part[start : start + done] == DATA[start : start + done]
        assert crc == crc32c.crc32c(DATA[start : start + done])
    return url, record


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 1, 4])
def test_cancel_then_resume(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url, record = interrupted(fault_server, tmp_path, concurrency)
    kept = sum(done for _s, _e, done, _c in record["parts"])
    res = fault_server.resource("/f.bin")
    res.configure(rate_limit=FAST)
    first_run = res.get_count
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert result.path == str(tmp_path / "f.bin")  # the same name: our own partial download was resumed
    assert read(result.path) == DATA
    assert result.resumed == kept
    assert os.listdir(tmp_path) == ["f.bin"]
    # Everything sent in both runs, abandoned probe bodies and cancelled reads included.
    assert res.bytes_sent < 1.3 * len(DATA)
    # The second run asked only for ranges, with If-Range, none of them starting at 0 but the probe.
    resumed_requests = res.requests[first_run + 1 :]
    assert resumed_requests
    assert all(r.range and r.if_range == res.etag for r in resumed_requests)


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 4])
def test_resume_rehashes_kept_bytes(fault_server: FaultServer, tmp_path, concurrency) -> None:
    """A checksum over the whole file is still verified when part of it came from the first run."""
    md5 = f"md5:{hashlib.md5(DATA).hexdigest()}"
    url, _record = interrupted(fault_server, tmp_path, concurrency, checksum=md5)
    fault_server.resource("/f.bin").configure(rate_limit=FAST)
    result = download(url, str(tmp_path), concurrency=concurrency, checksum=md5, options=OPTS)
    assert result.resumed > 0
    assert result.verdict == "verified"
    assert read(result.path) == DATA


@pytest.mark.slow
def test_resume_combines_part_crc32c(fault_server: FaultServer, tmp_path) -> None:
    spec = f"crc32c:{crc32c.crc32c(DATA):08x}"
    url, _record = interrupted(fault_server, tmp_path, 4, checksum=spec)
    fault_server.resource("/f.bin").configure(rate_limit=FAST)
    result = download(url, str(tmp_path), concurrency=4, checksum=spec, options=OPTS)
    assert result.resumed > 0
    assert result.verdict == "verified"
    assert result.crc32c == spec.split(":")[1]


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [None, 4])
def test_resume_after_remote_change_starts_over(fault_server: FaultServer, tmp_path, concurrency) -> None:
    url, _record = interrupted(fault_server, tmp_path, concurrency)
    res = fault_server.resource("/f.bin")
    res.set_data(NEW)
    res.configure(rate_limit=FAST)
    result = download(url, str(tmp_path), concurrency=concurrency, options=OPTS)
    assert result.resumed == 0
    assert result.path == str(tmp_path / "f.bin")
    assert read(result.path) == NEW
    assert os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.slow
def test_resume_with_other_concurrency(fault_server: FaultServer, tmp_path) -> None:
    """A record written by parallel parts is picked up by the inline reader (its contiguous prefix)."""
    url, _record = interrupted(fault_server, tmp_path, 4)
    fault_server.resource("/f.bin").configure(rate_limit=FAST)
    result = download(url, str(tmp_path), concurrency=None, options=OPTS)
    assert read(result.path) == DATA
    assert os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.slow
def test_cancel_while_a_connection_is_stalled(fault_server: FaultServer, tmp_path) -> None:
    """A worker stuck in a read does not hold up a cancel for long, and the next run still resumes."""
    url = fault_server.add("/f.bin", DATA)
    res = fault_server.resource("/f.bin")
    cancel = threading.Event()

    def after_probe(probe, target) -> None:
        res.configure(stall_after=100_000, stall_times=1)

    def progress(p) -> None:
        if "stall" in [f for r in res.requests for f in r.faults] and p.parts_done >= 3:
            cancel.set()

    opts = Options(part_size=MiB, retries=3, retry_base=0.01, http=HTTPSettings(read_timeout=30))
    started = time.monotonic()
    with pytest.raises(Cancelled):
        download(
            url,
            str(tmp_path),
            concurrency=4,
            options=opts,
            progress=progress,
            cancel=cancel,
            on_probe=after_probe,
        )
    assert time.monotonic() - started < 10  # not the 30 s read timeout
    result = download(url, str(tmp_path), concurrency=4, options=OPTS)
    assert result.resumed >= 3 * MiB
    assert read(result.path) == DATA
