"""Every fault of the engine tests, once more through the queue: `add -i` then `run --once`.

The engine tests (test_engine_faults.py, test_engine_basic.py) pin down each fault in detail; this one
checks the same faults reach the same outcome when a job runs under the supervisor (its shared worker
pool, its keep-alive sessions, its resume records in SQLite): the right file under the final name, or a
failed job with one clear line and nothing under the final name. One runner runs them all, as a server
would, so a fault in one job must not spoil another.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.helpers.faultserver import FaultServer
from tests.helpers.runner_util import cli, jobs

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
BIG = random.Random(41).randbytes(2 * MiB + 777_777)  # three parts of 1 MiB: the worker pool
SMALL = random.Random(42).randbytes(300_000)  # below one part: read in the supervisor from the probe
NEW = random.Random(43).randbytes(len(BIG))
ENV = {
    "GETM_TUI_PART_SIZE": "1M",
    "GETM_TUI_CONCURRENCY": "4",
    "GETM_TUI_MAX_ACTIVE": "4",
    "GETM_TUI_READ_TIMEOUT": "1",
    "GETM_TUI_RETRIES": "3",
}


@dataclass
class Case:
    name: str
    data: bytes
    options: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""  # ALGO:HEX after the URL in the -i file
    fails: str = ""  # "" when the job must succeed, else a text its one-line error must hold
    saved: bytes | None = None  # what the file must hold, when not `data`
    path: str = ""  # the URL path when not /rf/<name>.bin
    hostile: bool = False  # a Content-Disposition name that must be sanitized


def cases(server: FaultServer) -> list[Case]:
    out = [
        Case("drop_parts", BIG, {"drop_after": 300_000, "drop_times": 3}),
        Case("drop_inline", SMALL, {"drop_after": 100_000, "drop_times": 1}),
        Case("reset", BIG, {"drop_after": 500_000, "drop_times": 3, "drop_rst": True}),
        Case("status_retry_after", SMALL, {"statuses": [503, 429], "retry_after": "1"}),
        Case("status_parts", BIG, {"statuses": [500, 503, 502], "retry_after": "0"}),
        Case("ignore_range", BIG, {"ignore_range": True}),
        Case("range_as_200", BIG, {"range_as_200": True}),
        Case("wrong_content_range", BIG, {"wrong_content_range": 5, "wrong_content_range_times": 2}),
        Case("short_body", BIG, {"short_body": 1000, "short_body_times": 3}),
        Case("extra_bytes", BIG, {"extra_bytes": 1000}),
        Case("stall_inline", SMALL, {"stall_after": 100_000, "stall_times": 1}),
        # The probe's abandoned body takes the first stall; a part's request gets the second.
        Case("stall_part", BIG, {"stall_after": 200_000, "stall_times": 2}),
        Case("etag_change", BIG, {"change_after_requests": 2, "changed_data": NEW}, saved=NEW),
        Case(
            "corrupt_content_md5",
            BIG,
            {"content_md5": True, "corrupt_offset": 1_500_000},
            fails="checksum mismatch",
        ),
        Case(
            "corrupt_user_md5",
            SMALL,
            {"corrupt_offset": 10},
            checksum="md5:" + hashlib.md5(SMALL).hexdigest(),
            fails="checksum mismatch",
        ),
        Case("drop_always", SMALL, {"drop_after": 1000}, fails="giving up after 3 retries"),
        Case("not_found", SMALL, {"statuses": [404]}, fails="HTTP 404"),
        Case("redirect_loop", b"", {"redirect_to": "/rf/loop_b"}, fails="too many redirects"),
        Case("redirect_chain", b"", {"redirect_to": "/rf/hop1"}, fails="too many redirects"),
        Case("redirect_ok", b"", {"redirect_to": "/rf/redirect_target.bin"}, saved=SMALL),
    ]
    server.add("/rf/loop_b", b"", redirect_to="/rf/redirect_loop.bin")
    for i in range(1, 11):  # /rf/redirect_chain.bin and ten more hops: eleven redirects
        server.add(f"/rf/hop{i}", b"", redirect_to=f"/rf/hop{i + 1}" if i < 10 else "/rf/redirect_target.bin")
    server.add("/rf/redirect_target.bin", SMALL)
    hostile = {
        "parent": 'attachment; filename="../../../x.bin"',
        "absolute": 'attachment; filename="/etc/cron.d/x"',
        "controls": 'attachment; filename="a\x1b[31mb\x07.bin"',
        "c1_controls": "attachment; filename*=UTF-8''a%C2%9Bb.bin",
        "long": f'attachment; filename="{"n" * 400}.bin"',
        "empty": 'attachment; filename=""',
        "our_suffix": 'attachment; filename="drop_parts.bin.getm-part"',
    }
    for label, header in hostile.items():
        options = {"headers": {"Content-Disposition": header}}
        out.append(Case(f"hostile_{label}", SMALL, options, hostile=True))
    return out


@pytest.mark.slow
def test_every_fault_through_the_runner(fault_server: FaultServer, tmp_path):
    data_dir, out_dir = str(tmp_path / "q"), tmp_path / "out"
    out_dir.mkdir()
    table = cases(fault_server)
    lines = []
    for case in table:
        url = fault_server.add(case.path or f"/rf/{case.name}.bin", case.data, **case.options)
        lines.append(f"{url} {case.checksum}".strip())
    (tmp_path / "urls.txt").write_text("\n".join(lines) + "\n")
    added = cli(data_dir, "add", "-i", str(tmp_path / "urls.txt"), "-d", str(out_dir))
    assert added.returncode == 0, added.stderr
    ids = [int(x) for x in added.stdout.split()]
    assert len(ids) == len(table)

    res = cli(data_dir, "run", "--once", "--json", env=ENV, timeout=110)
    assert res.returncode == 1, res.stderr  # some jobs fail, on purpose
    assert "Traceback" not in res.stdout + res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    finished = events[-1]
    assert finished["event"] == "finished"
    assert finished["failed"] == sum(1 for c in table if c.fails)
    assert fault_server.errors == []

    listed = {j["id"]: j for j in jobs(data_dir)}
    saved_paths = set()
    for job_id, case in zip(ids, table, strict=True):
        job = listed[job_id]
        what = f"{case.name}: {job}"
        if case.fails:
            assert job["state"] == "failed", what
            assert case.fails in job["error"], what
            assert "\n" not in job["error"], what
            name = os.path.join(str(out_dir), f"{case.name}.bin")
            assert not os.path.exists(name), what  # nothing under the final name
            continue
        assert job["state"] == "done", what
        path = job["path"]
        assert os.path.dirname(path) == str(out_dir), what
        with open(path, "rb") as f:
            got = f.read()
        assert got == (case.saved if case.saved is not None else case.data), what
        saved_paths.add(path)
        if case.hostile:
            base = os.path.basename(path)
            assert not any(unicodedata.category(c) == "Cc" for c in base), what
            assert "/" not in base and len(base.encode()) <= 255, what
            assert not base.endswith((".getm-part", ".getm-resume")), what

    # What each fault did on the wire: it fired, and it was survived rather than avoided.
    def fired(name: str, fault: str) -> int:
        return sum(fault in r.faults for r in fault_server.resource(f"/rf/{name}.bin").requests)

    assert fired("drop_parts", "drop") == 3 and fired("reset", "drop") == 3
    assert fired("short_body", "short_body") == 3 and fired("wrong_content_range", "wrong_content_range") == 2
    assert fired("stall_inline", "stall") == 1 and fired("stall_part", "stall") == 2
    assert fired("etag_change", "changed") == 1 and fired("extra_bytes", "extra_bytes") >= 1
    statuses = [r.status for r in fault_server.resource("/rf/status_retry_after.bin").requests]
    assert statuses[:3] == [503, 429, 206]
    assert os.path.getsize(str(out_dir / "extra_bytes.bin")) == len(BIG)  # nothing past Content-Length
    assert fault_server.resource("/rf/redirect_target.bin").get_count == 1  # only redirect_ok got there

    # The output directory holds the saved files and nothing else, and the hostile names stayed inside
    # it. A job that failed part-way keeps its partial file for `retry` to resume (a mismatch does not:
    # those bytes are wrong); `rm` takes it away.
    kept = str(out_dir / "drop_always.bin.getm-part")
    assert {str(p) for p in out_dir.iterdir()} == saved_paths | {kept}
    assert sorted(os.listdir(tmp_path)) == ["out", "q", "urls.txt"]
    failed_ids = [str(i) for i, c in zip(ids, table, strict=True) if c.fails]
    assert cli(data_dir, "rm", *failed_ids).returncode == 0
    assert {str(p) for p in out_dir.iterdir()} == saved_paths
