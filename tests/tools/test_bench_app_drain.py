"""Case (j), the app while its runner drains small files: the figures are medians of the windows taken
while the drain went on, the target is judged only at the rate the issue names, and a run on a small
queue measures real processes and leaves nothing behind."""

from __future__ import annotations

import os

import pytest
from benchlib import app_drain
from benchlib.install import getm_tui_binary
from benchlib.measure import alive, base_env


def window(cpu, rate, drained=False):
    return {
        "wall_s": 5.0,
        "cpu_pct": cpu,
        "cpu_pct_per_second": [cpu] * 5,
        "jobs_done": int(rate * 5),
        "jobs_per_s": rate,
        "failed": 0,
        "supervisor_cpu_pct": 60.0,
        "hosts_cpu_pct": 40.0,
        "loop_on_cpu_pct": cpu,
        "loop_waiting_pct": 1.0,
        "drained": drained,
        "active_end": 0 if drained else 16,
    }


def record(*windows):
    return {
        "files": 20_000,
        "file_bytes": app_drain.FILE_SIZE,
        "targets": {"cpu_pct": app_drain.TARGET_CPU_PCT, "jobs_per_s": app_drain.TARGET_RATE},
        "terminal": {"windows": list(windows), "first_rows_s": 0.4},
        "states_at_end": {"done": 20_000},
        "seconds": 70.0,
    }


def test_the_window_the_drain_ended_in_is_left_out_of_the_medians():
    rec = record(window(10.0, 400.0), window(14.0, 380.0), window(60.0, 90.0, drained=True))
    m = app_drain.medians(rec)
    assert m is not None and m["cpu_pct"] == 12.0 and m["jobs_per_s"] == 390.0
    text = app_drain.table(rec)
    assert "not counted" in text and "median of 2 window(s)" in text
    assert app_drain.target_line(rec).endswith("MET")


def test_the_target_is_missed_over_the_limit_and_not_judged_below_the_rate():
    assert app_drain.target_line(record(window(30.0, 350.0))).endswith("MISSED")
    slow = app_drain.target_line(record(window(5.0, 120.0)))
    assert "not judged" in slow and "MET" not in slow
    assert app_drain.target_line(record(window(5.0, 0.0, drained=True))).endswith("n/a")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_drain_of_a_small_queue_is_measured_and_cleaned_up(tmp_path, fault_server):
    # Half a second a file, so the windows fall inside the drain whatever the machine's speed.
    urls = [fault_server.add(f"/drain/f{i:05d}.bin", os.urandom(4096), rate_limit=8192) for i in range(200)]
    work, target = tmp_path / "work", tmp_path / "target"
    work.mkdir()
    target.mkdir()
    rec = app_drain.measure(urls, work, target, base_env(tmp_path), getm_tui_binary(), lambda m: None, 0.3, 2)
    term = rec["terminal"]
    assert "error" not in term, term.get("error")
    assert term["windows"] and term["first_rows_s"] > 0
    assert all(w["cpu_pct"] >= 0 and w["jobs_done"] >= 0 for w in term["windows"])
    assert sum(w["jobs_done"] for w in term["windows"]) > 0
    assert term["quit"].startswith("q")
    assert not alive(term["app_pid"])
    assert list(work.iterdir()) == [] and list(target.iterdir()) == []
