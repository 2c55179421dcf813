"""The soak, scaled down: 300 small jobs (six of them in parts) through one runner, faults on 5% of the
requests; benchmarks/soak.py runs it as a user would and checks everything, this test reads its report.

The full run (10,000 jobs) is recorded in README.md; this one keeps the same checks in the suite: every
file correct and verified, memory flat, nothing left in /dev/shm, no temporary file, no process left.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak import Sample, flatness

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_soak_300_jobs_with_5_percent_faults(tmp_path):
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--jobs", "300", "--fault-rate", "0.05",
         "--large-every", "50", "--seed", "7", "--sample-every", "0.1", "--workdir", str(tmp_path / "soak"),
         "--json"],
        capture_output=True,
        text=True,
        timeout=140,
    )  # fmt: skip
    assert res.stdout, res.stderr
    report = json.loads(res.stdout.splitlines()[-1])
    detail = res.stderr
    assert report["files_correct"] == 300 and report["verified"] == 300, detail
    assert report["wrong"] == [] and report["leftovers"] == [], detail
    assert report["shm_left"] == [] and report["processes_left"] == [], detail
    assert report["server_errors"] == [], detail
    assert report["memory"]["flat"] is True and report["memory_hosts"]["flat"] is True, detail
    assert report["rss"]["supervisor_peak_mib"] < 150, detail
    assert 0 < report["rss"]["host_peak_mib"] < 250, detail  # the hosts were found and measured
    # Faults did happen, about as often as asked, and of many kinds.
    assert 0.02 <= report["faults_injected"] / report["get_requests"] <= 0.10, detail
    assert len(report["faults_by_kind"]) >= 6, detail
    assert res.returncode == 0 and report["ok"] is True, detail
    # Nothing but the queue, the list and the files is left in the work dir.
    assert sorted(p.name for p in (tmp_path / "soak").iterdir()) == ["out", "q", "urls.txt"]


def test_flatness_reads_sizes_not_absences():
    """A job host that is between jobs is sampled as 0 KiB: that is no size, and a window holding only
    such samples must not make a steady host look as if it grew from nothing (seen in CI)."""

    def run(host: list[int]) -> list[Sample]:
        return [Sample(i * 0.25, i * 10, 30_000, kib, 0, 0, 1) for i, kib in enumerate(host)]

    steady = [28_000, 28_000, 0, 0, 0, 28_100, 28_100, 28_200, 28_300, 28_300, 28_400, 0]  # 0 at 20-30%, end
    assert flatness(run(steady), 110, lambda s: s.host_rss)["flat"] is True
    growing = [28_000, 28_000, 28_000, 29_000, 33_000, 38_000, 42_000, 46_000, 50_000, 54_000, 58_000]
    report = flatness(run(growing), 100, lambda s: s.host_rss)
    assert report["flat"] is False and report["growth_kib"] > 8 * 1024
    assert flatness(run([0] * 12), 110, lambda s: s.host_rss)["flat"] is None
