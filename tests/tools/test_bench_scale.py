"""Case (h)'s pieces: the URL list, reading a listing from a pipe, the report's medians, growths and
verdicts; and one repetition of the case end to end on a small queue (real getm-tui, a loopback server
trickling the running jobs' bytes, the app in tmux when tmux is there)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from benchlib import queue_scale, scale_report
from benchlib.install import help_flags
from benchlib.measure import base_env, run_measured, tail_of


def url(rel: str) -> str:
    return f"http://127.0.0.1:1/{rel}"


def test_the_queue_list_has_distinct_urls_that_are_not_served(tmp_path):
    path = queue_scale.write_queue_list(tmp_path / "l.txt", 25_003, url)
    lines = path.read_text().splitlines()
    assert len(lines) == len(set(lines)) == 25_003
    assert lines[0] == url("queued/q0000000.bin") and lines[-1] == url("queued/q0025002.bin")
    assert all(queue_scale.ROW_NAME.search(line.rsplit("/", 1)[1]) for line in (lines[0], lines[-1]))


def test_stream_timing_counts_every_line_and_notes_the_first():
    s = queue_scale.stream_timing(["sh", "-c", "echo first; seq 100000"], dict(os.environ), timeout=60)
    assert s.returncode == 0 and s.lines == 100_001
    assert s.first_s is not None and s.first_s <= s.total_s


@pytest.mark.slow
def test_stream_timing_ends_an_overrunning_command():
    s = queue_scale.stream_timing(["sh", "-c", "echo one; exec sleep 60"], dict(os.environ), timeout=1)
    assert s.returncode == -9 and s.lines == 1


def test_an_empty_output_has_no_first_line():
    s = queue_scale.stream_timing(["true"], dict(os.environ), timeout=60)
    assert s.first_s is None and s.lines == 0 and s.returncode == 0


def test_listing_variants_follow_the_binarys_options():
    assert [k for k, _ in queue_scale.listing_variants(frozenset({"--json"}))] == ["ls", "ls_json"]
    both = queue_scale.listing_variants(frozenset({"--json", "--json-lines"}))
    assert both[-1] == ("ls_jsonl", ["--json-lines"])


def test_stdout_to_a_file_of_our_choice_and_only_its_tail_is_kept(tmp_path):
    listing = tmp_path / "listing.txt"
    m = run_measured(["seq", "200000"], tmp_path / "scratch", dict(os.environ), stdout_to=listing)
    assert m.returncode == 0 and queue_scale.count_lines(listing) == 200_000
    assert m.stdout.endswith("200000\n") and len(m.stdout) == 4000
    assert tail_of(listing, 7) == "200000\n"


def run_of(ok=True, **figures):
    return {"ok": ok, "rep": 0, **figures}


def record(jobs, ours_runs, base_runs=None):
    tools = [{"label": "getm-tui", "binary": "/new", "runs": ours_runs}]
    if base_runs is not None:
        tools.append({"label": "getm-tui@baseline", "binary": "/old", "runs": base_runs})
    return {"key": "h", "jobs": jobs, "small_jobs": 1000, "running": 4, "sample_s": 5.0, "tools": tools}


def test_scale_report_medians_growth_and_verdicts_at_full_size():
    runs = [
        run_of(add_s=8.0, supervisor_rss_mib_small=30.0, supervisor_rss_mib_big=45.0),
        run_of(add_s=12.0, supervisor_rss_mib_small=30.0, supervisor_rss_mib_big=35.0),
        run_of(add_s=9.0, supervisor_rss_mib_small=31.0, supervisor_rss_mib_big=36.0),
        run_of(ok=False, error="add -i: exit 1", add_s=0.1),
    ]
    rec = record(1_000_000, runs, [run_of(add_s=18.0)])
    lines = scale_report.target_lines(rec)
    add = next(line for line in lines if line.startswith("  (h) add -i: seconds"))
    assert "9.000" in add and add.endswith("MET")  # the failed run's 0.1 s is not counted
    growth = next(line for line in lines if "supervisor: RSS growth" in line)
    assert "5.000" in growth and growth.endswith("MET")
    assert any("JSON lines" in line and "not measured" in line for line in lines)
    table = scale_report.table(rec)
    assert "new/base" in table and "0.500" in table and "r0 FAILED: add -i: exit 1" in table
    assert "  (h) add -i: seconds: new/baseline = 0.500" in scale_report.baseline_lines(rec)


def test_scale_report_judges_nothing_below_a_million():
    lines = scale_report.target_lines(record(20_000, [run_of(add_s=30.0)]))
    assert all(line.endswith(("not judged", "not measured (this getm-tui's ls has no JSON-lines option)"))
               for line in lines)  # fmt: skip
    assert scale_report.baseline_lines(record(20_000, [run_of(add_s=3.0)])) == []


def getm_tui() -> str:
    beside = Path(sys.executable).with_name("getm-tui")
    return str(beside) if beside.exists() else shutil.which("getm-tui") or "getm-tui"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_one_repetition_of_h_on_a_small_queue(tmp_path, fault_server):
    running = fault_server.add("/run.bin", os.urandom(4 << 20), rate_limit=32 * 1024)
    work = tmp_path / "work"
    work.mkdir()
    lists = tmp_path / "lists"
    lists.mkdir()
    s = queue_scale.ScaleSetup(
        jobs=1500,
        big_list=queue_scale.write_queue_list(lists / "big.txt", 1500, fault_server.url),
        small_list=queue_scale.write_queue_list(lists / "small.txt", 200, fault_server.url),
        running_url=running,
        work=work,
        env=base_env(tmp_path),
        timeout=120,
        sample=0.5,
        log=lambda m: None,
    )
    probe = None
    if shutil.which("tmux"):
        sys.path.insert(0, str(Path(queue_scale.__file__).parents[1]))
        import app_responsiveness

        def probe(binary, env):
            return app_responsiveness.first_rows(binary, env, queue_scale.ROW_NAME, 0.3, lambda m: None)

    binary = getm_tui()
    figures = queue_scale.measure_binary(binary, s, help_flags(binary, "ls"), probe)
    assert figures["ok"], figures.get("error")
    assert figures["add_s"] > 0 and figures["add_rss_mib"] > 0
    assert figures["ls_file_s"] > 0 and figures["ls_json_file_s"] > 0 and figures["ls_first_s"] is not None
    for which in ("small", "big"):
        assert figures[f"supervisor_rss_mib_{which}"] > 0 and figures[f"host_rss_mib_{which}"] > 0
        if probe is not None:
            assert figures[f"app_first_rows_s_{which}"] > 0 and figures[f"app_rss_mib_{which}"] > 0
    assert list(work.iterdir()) == []  # the queues, outputs and listings are removed
