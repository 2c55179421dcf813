"""Snapshot tests of the app's screens on fixed data: no supervisor, no poller, no clock.

The app is built with connect=False and poll=False; each test feeds it hand-made queue rows and one
supervisor snapshot exactly as the poller and the link would (posted messages), and a fixed throughput
history. Regenerate with `pytest --snapshot-update tests/test_app_snapshots.py` and look at the SVGs in
tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from getm_tui.app.app import FromSupervisor, GetmApp
from getm_tui.app.queue_reader import QueueWindow
from getm_tui.app.screens.add import AddDialog
from getm_tui.app.screens.confirm import ConfirmRemove
from getm_tui.app.screens.details import DetailsScreen
from getm_tui.app.widgets.queue_table import QueueTable
from getm_tui.config import Settings
from getm_tui.queue.sqlite import Job, Queue
from getm_tui.queue.views import View
from getm_tui.runner import protocol as P

MiB = 1024 * 1024
GiB = 1024 * MiB
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC: every time shown on a screen is derived from it

SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
MD5_GOOD = "5d41402abc4b2a76b9719d911017c592"
MD5_BAD = "7d793037a0760186574b0282f2f435e7"

# The directory the add dialog shows by default: fixed, and it must exist for validation to pass.
DOWNLOADS = "/tmp"


def _job(job_id: int, name: str, state: str, size: int | None, done: int, **extra: Any) -> Job:
    values: dict[str, Any] = {
        "url": f"https://data.example.org/files/{name}",
        "directory": "/data/downloads",
        "name": None,
        "path": f"/data/downloads/{name}",
        "priority": 0,
        "concurrency": 4,
        "checksums": [],
        "created": T0 + job_id,
        "updated": T0 + job_id,
    }
    values.update(extra)
    return Job(id=job_id, state=state, size=size, bytes_done=done, **values)


def _jobs() -> list[Job]:
    return [
        _job(
            1, "ubuntu-24.04-desktop-amd64.iso", "done", 6 * GiB, 6 * GiB,
            verdict="verified", finished=T0 + 100,
            checksums=[f"sha256:{SHA256}"],
            integrity=[
                {"algorithm": "sha256", "source": "given", "expected": SHA256, "computed": SHA256,
                 "ok": True, "detail": ""},
                {"algorithm": "md5", "source": "Content-MD5", "expected": MD5_GOOD, "computed": MD5_GOOD,
                 "ok": True, "detail": ""},
            ],
        ),
        _job(
            2, "ERR1234567_1.fastq.gz", "active", 2400 * MiB, 1100 * MiB, concurrency=8,
            info={
                "headers": {
                    "Content-Type": "application/gzip",
                    "Content-Length": str(2400 * MiB),
                    "Accept-Ranges": "bytes",
                    "ETag": '"4f1c-5e2b"',
                    "Last-Modified": "Tue, 14 Nov 2023 22:00:00 GMT",
                    "x-goog-hash": f"md5={MD5_GOOD}",
                },
                "ranges": True,
                "validator": '"4f1c-5e2b"',
            },
        ),
        _job(3, "model-00001-of-00004.safetensors", "active", 4 * GiB, 300 * MiB, concurrency=2),
        _job(4, "GRCh38.primary_assembly.genome.fa.gz", "queued", None, 0, priority=1, path=None,
             concurrency=None),
        _job(
            5, "dataset-2023.tar", "failed", 512 * MiB, 512 * MiB, verdict="mismatch", attempts=1,
            integrity=[
                {"algorithm": "md5", "source": "Content-MD5", "expected": MD5_GOOD, "computed": MD5_BAD,
                 "ok": False, "detail": "checksum mismatch"},
            ],
            error=f"checksum mismatch: md5 expected {MD5_GOOD}, computed {MD5_BAD}",
        ),
        _job(6, "weights.bin", "paused", 512 * MiB, 128 * MiB),
        _job(
            7, "private.bin", "failed", None, 0, attempts=1, path=None,
            url="https://bucket.example.org/private.bin?X-Amz-Signature=topsecret",
            error="HTTP 404 Not Found for https://bucket.example.org/private.bin?X-Amz-Signature=…",
        ),
    ]  # fmt: skip


def _segments(size: int, parts: int, done_parts: int, in_flight: list[int]) -> tuple:
    """`parts` equal parts: the first `done_parts` done, then in-flight ones `in_flight` bytes along."""
    step = size // parts
    segs = []
    for i in range(parts):
        if i < done_parts:
            segs.append((i * step, step, step, "done"))
        elif i - done_parts < len(in_flight):
            segs.append((i * step, step, in_flight[i - done_parts], "active"))
        else:
            segs.append((i * step, step, 0, "pending"))
    return tuple(segs)


def _snapshot() -> P.Snapshot:
    fastq = P.LiveJob(
        2, "ERR1234567_1.fastq.gz", 2400 * MiB, 1100 * MiB, 48.5 * MiB, 8, 8, 11, 24, 2,
        _segments(2400 * MiB, 24, 9, [90 * MiB, 60 * MiB, 40 * MiB, 30 * MiB, 20 * MiB, 10 * MiB,
                                      5 * MiB, 1 * MiB]),
        tuple(6.0 * MiB + i * 0.25 * MiB for i in range(8)),
    )  # fmt: skip
    model = P.LiveJob(
        3, "model-00001-of-00004.safetensors", 4 * GiB, 300 * MiB, 12.25 * MiB, 2, 2, 2, 32, 0,
        _segments(4 * GiB, 32, 2, [20 * MiB, 16 * MiB]), (6.5 * MiB, 5.75 * MiB),
    )  # fmt: skip
    return P.Snapshot(T0 + 200, (fastq, model), fastq.rate + model.rate, 0)


def _counts(jobs: list[Job]) -> dict[str, int]:
    counts = dict.fromkeys(("queued", "active", "paused", "done", "failed", "canceled"), 0)
    for j in jobs:
        counts[j.state] += 1
    return counts


def make_app(tmp_path: Path, theme: str = "textual-dark") -> GetmApp:
    app = GetmApp(str(tmp_path / "data"), Settings(download_dir=DOWNLOADS), connect=False, poll=False)
    # The one clock-driven piece, the once-a-second throughput sample, is switched off: the history
    # is the fixed one `feed` pushes.
    app._sample_rate = lambda: None  # type: ignore[method-assign]
    app.theme = theme
    return app


async def feed(pilot: Any, select: int | None = None) -> None:
    """Give the app the fixed queue, live snapshot and throughput history; optionally select a job."""
    app = pilot.app
    app.mode = "started"
    jobs = _jobs()
    app.post_message(QueueWindow(jobs, 0, len(jobs), _counts(jobs), View()))
    await pilot.pause()
    app.post_message(FromSupervisor(_snapshot()))
    await pilot.pause()
    total = _snapshot().rate
    for i in range(60):  # a minute of throughput: ramping up, then wobbling around the current rate
        ramp = min(1.0, i / 20)
        app.main.push_rate(total * ramp * (0.85 + 0.15 * math.sin(i / 3)))
    if select is not None:
        app.main.query_one("#queue", QueueTable).select_id(select)
    await pilot.pause()


async def wait_for_screen(pilot: Any, kind: type) -> Any:
    deadline = time.monotonic() + 10
    while not isinstance(pilot.app.screen, kind):
        assert time.monotonic() < deadline, f"{kind.__name__} did not open"
        await pilot.pause(0.02)
    await pilot.pause()
    return pilot.app.screen


# -- the main screen ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])
def test_main_screen(snap_compare, tmp_path, size, theme):
    async def run_before(pilot):
        await feed(pilot, select=2)

    assert snap_compare(make_app(tmp_path, theme), terminal_size=size, run_before=run_before)


@pytest.mark.slow
def test_main_screen_mismatch_selected(snap_compare, tmp_path):
    """The integrity panel of a job whose checksum did not match, with the error below."""

    async def run_before(pilot):
        await feed(pilot, select=5)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.slow
def test_main_screen_verified_selected_wide(snap_compare, tmp_path):
    """The integrity panel of a verified job: every checksum with its source, expected and computed."""

    async def run_before(pilot):
        await feed(pilot, select=1)

    assert snap_compare(make_app(tmp_path), terminal_size=(200, 60), run_before=run_before)


# -- the add dialog -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
def test_add_dialog(snap_compare, tmp_path, theme):
    async def run_before(pilot):
        await feed(pilot)
        await pilot.press("a")
        await wait_for_screen(pilot, AddDialog)

    assert snap_compare(make_app(tmp_path, theme), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.slow
@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
def test_add_dialog_with_error(snap_compare, tmp_path, theme):
    async def run_before(pilot):
        await feed(pilot)
        await pilot.press("a")
        dialog = await wait_for_screen(pilot, AddDialog)
        await pilot.press(*"gopher:/nowhere")
        await pilot.press("enter")
        await pilot.pause()
        assert str(dialog.query_one("#add-error").render()).startswith("✗")

    assert snap_compare(make_app(tmp_path, theme), terminal_size=(80, 24), run_before=run_before)


# -- the remove confirmation ----------------------------------------------------------------------


@pytest.mark.slow
def test_remove_confirmation(snap_compare, tmp_path):
    async def run_before(pilot):
        await feed(pilot, select=1)
        await pilot.press("delete")
        await wait_for_screen(pilot, ConfirmRemove)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=run_before)


# -- the details screen ---------------------------------------------------------------------------

EVENTS = [
    (T0 + 10, "info", "probed: 2.3 GiB, ranges, ETag"),
    (T0 + 42, "warning", "part 3: connection reset; retrying in 0.7s"),
    (T0 + 43, "warning", "part 7: HTTP 503; retrying in 1.2s (Retry-After)"),
    (T0 + 95, "info", "concurrency 4 -> 8"),
]


@pytest.fixture
def utc(monkeypatch):
    """Event times are shown in local time: make that UTC for the length of the test."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.slow
@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])
def test_details_screen(snap_compare, tmp_path, utc, size):
    app = make_app(tmp_path)
    with Queue(app.data_dir) as q:  # the details screen reads a job's history from the queue
        q.db.executemany("INSERT INTO events (job_id, at, kind, message) VALUES (2, ?, ?, ?)", EVENTS)

    async def run_before(pilot):
        await feed(pilot, select=2)
        await pilot.press("enter")
        screen = await wait_for_screen(pilot, DetailsScreen)
        deadline = time.monotonic() + 10
        while not screen.events:  # loaded by a worker thread
            assert time.monotonic() < deadline
            await pilot.pause(0.02)
        await pilot.pause()
        # A second snapshot, as the supervisor sends ten a second: rates must come from the snapshot.
        pilot.app.post_message(FromSupervisor(_snapshot()))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
