"""The report's ratios: a getm-tui row is compared with the peers of its own group only (a durable
download with durable peers), never with a limit; it gets its ratio to the limit and to its --baseline
twin; a many-file case shows its cost per file; old results files (no groups) read as before."""

from __future__ import annotations

from benchlib import report
from benchlib.cases import DURABLE


def contender(label, walls, ours=False, group="", limit=False, baseline_of=None, ok=True):
    runs = [
        {"ok": ok, "wall": w, "user": 1.0, "sys": 0.5, "max_rss_kib": 2048, "tree_pss_kib": None}
        for w in walls
    ]
    return {
        "label": label,
        "ours": ours,
        "group": group,
        "limit": limit,
        "baseline_of": baseline_of,
        "runs": runs,
    }


def case_a():
    return {
        "key": "a",
        "title": "one file",
        "bytes": 1 << 30,
        "files": 1,
        "notes": [],
        "contenders": [
            contender("getm-tui -c 4", [1.0, 1.2, 1.1], ours=True, group=DURABLE),
            contender(
                "getm-tui@baseline -c 4", [2.2, 2.0], ours=True, group=DURABLE, baseline_of="getm-tui -c 4"
            ),
            contender("getm-tui -c 8 --no-sync", [0.6], ours=True),
            contender("dd bs=4M conv=fsync (the durable limit)", [0.5], group=DURABLE, limit=True),
            contender("curl + sync", [1.5], group=DURABLE),
            contender("aria2c -x8 + sync", [1.25], group=DURABLE),
            contender("curl", [0.4]),
            contender("hf_transfer max_files=8", [0.8]),
            contender("wget2", [9.0], ok=False),
        ],
    }


def test_ratios_are_within_the_group_and_a_limit_is_not_a_peer():
    rows = {r.label: r for r in report.summarize(case_a())}
    durable = rows["getm-tui -c 4"]
    assert durable.median == 1.1 and durable.ratio == 1.1 / 1.25  # aria2c + sync, not curl nor dd
    assert durable.vs_limit == 1.1 / 0.5
    assert durable.vs_baseline == 1.1 / 2.1
    assert (
        rows["getm-tui -c 8 --no-sync"].ratio == 0.6 / 0.4
        and rows["getm-tui -c 8 --no-sync"].vs_limit is None
    )
    assert rows["dd bs=4M conv=fsync (the durable limit)"].role == "LIMIT"
    assert rows["getm-tui@baseline -c 4"].role == "base" and rows["curl"].role == "peer"
    assert rows["wget2"].ok == 0 and rows["wget2"].failed == 1 and rows["wget2"].median is None


def test_case_a_targets_judge_the_limit_and_the_peers_of_each_group():
    lines = report.case_a_targets(report.summarize(case_a()))
    assert len(lines) == 2  # the baseline's row is not judged
    durable, no_sync = lines
    assert "getm-tui -c 4" in durable and "ours/dd limit = 2.200" in durable and durable.endswith("MISSED")
    assert "ours/hf_transfer = 0.750" in no_sync and "ours/curl = 1.500" in no_sync
    assert no_sync.endswith("MISSED")


def test_an_old_results_file_without_groups_compares_with_every_peer():
    case = case_a()
    for c in case["contenders"]:
        for key in ("group", "limit", "baseline_of"):
            del c[key]
    case["contenders"] = [c for c in case["contenders"] if "@baseline" not in c["label"]]
    rows = {r.label: r for r in report.summarize(case)}
    assert rows["getm-tui -c 4"].ratio == 1.1 / 0.4  # dd counts as a peer in a file that does not say
    assert rows["getm-tui -c 4"].vs_baseline is None


def queue(key, files, ours_wall, curl_wall):
    return {
        "key": key,
        "title": "small files",
        "bytes": files * 65536,
        "files": files,
        "notes": [],
        "contenders": [
            contender("getm-tui add+run --once (defaults)", [ours_wall], ours=True),
            contender("curl -Z --parallel-max 16", [curl_wall]),
            contender("aria2c -j16", [curl_wall * 2]),
            contender("wget2 --max-threads=16", [curl_wall * 3]),
        ],
    }


def test_many_files_cost_per_file_and_the_queue_targets():
    c, g = queue("c", 1000, 2.0, 2.5), queue("g", 10000, 30.0, 25.0)
    rows_c, rows_g = report.summarize(c), report.summarize(g)
    assert rows_c[0].per_file_ms == 2.0 and rows_g[0].per_file_ms == 3.0
    (line,) = report.per_file_targets(rows_c, rows_g)
    assert "= 1.500" in line and line.endswith("MISSED")
    (met,) = report.queue_targets("c", rows_c)
    assert "ours/curl = 0.800" in met and met.endswith("MET")
    (missed,) = report.queue_targets("g", rows_g)
    assert "ours/curl = 1.200" in missed and missed.endswith("MISSED")


def test_render_shows_roles_groups_and_the_baseline_ratios():
    results = {
        "started": "2026-01-01T00:00:00",
        "repeat": 3,
        "quick": True,
        "target_dir": "/tmp/x",
        "target_fs": "ext4 on /dev/x",
        "cases": [case_a(), queue("c", 1000, 2.0, 2.5)],
        "skipped": [],
    }
    text = report.render(results)
    assert "LIMIT" in text and f"[{DURABLE}]" in text and "ms/file" in text
    assert "(a) getm-tui -c 4: new/baseline = 0.524" in text
    assert "(e)" in text and "getm-tui@baseline -c 4" in text.split("(e) CPU")[1]
