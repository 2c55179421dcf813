"""(h)'s part of the report: one row per figure, one column per getm-tui binary (medians over the
repetitions that worked), the new/baseline ratio, and the issue's targets with verdicts.

The targets are the issue's for a queue of 1,000,000; a run with fewer jobs (--quick) shows the figures
but judges nothing, since a target met at 20,000 says little about 1,000,000."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
TARGET_JOBS = 1_000_000


@dataclass(frozen=True)
class Figure:
    """One figure of (h): its key in a run's record (or a difference of two keys), what it is, and the
    issue's bound on it, if it sets one."""

    key: str
    text: str
    limit: float | None = None  # the figure must be at most this (None: no target, shown for context)
    minus: str | None = None  # the figure is record[key] - record[minus]


FIGURES = (
    Figure("add_s", "add -i: seconds", 10.0),
    Figure("add_rss_mib", "add -i: peak RSS MiB (largest process)", 200.0),
    Figure("add_pss_mib", "add -i: peak PSS MiB (whole tree)"),
    Figure("ls_first_s", 'ls: first line, seconds ("at once")', 0.5),
    Figure("ls_file_s", "ls > file: seconds", 5.0),
    Figure("ls_pipe_s", "ls | reader: seconds to the end"),
    Figure("ls_rss_mib", "ls > file: peak RSS MiB"),
    Figure("ls_json_first_s", "ls --json: first line, seconds"),
    Figure("ls_json_file_s", "ls --json > file: seconds"),
    Figure("ls_json_rss_mib", "ls --json > file: peak RSS MiB"),
    Figure("ls_jsonl_first_s", "ls (JSON lines): first line, seconds", 0.5),
    Figure("ls_jsonl_file_s", "ls (JSON lines) > file: seconds"),
    Figure("ls_jsonl_rss_mib", "ls (JSON lines) > file: peak RSS MiB"),
    Figure("app_first_rows_s_big", "app: first rows on screen, seconds", 1.0),
    Figure("app_first_rows_s_small", "app: first rows, 1,000 queued, seconds"),
    Figure("app_rss_mib_big", "app: peak RSS MiB", 150.0),
    Figure("app_rss_mib_big", "app: RSS growth 1,000 -> N queued, MiB", minus="app_rss_mib_small"),
    Figure("app_pss_mib_big", "app: peak PSS MiB"),
    Figure("supervisor_rss_mib_big", "supervisor: peak RSS MiB"),
    Figure(
        "supervisor_rss_mib_big", "supervisor: RSS growth 1,000 -> N, MiB", 10.0, "supervisor_rss_mib_small"
    ),
    Figure("host_rss_mib_big", "largest job host: peak RSS MiB"),
    Figure("host_rss_mib_big", "job host: RSS growth 1,000 -> N, MiB", 10.0, "host_rss_mib_small"),
)


def value(run: Record, f: Figure) -> float | None:
    v = run.get(f.key)
    if v is None or f.minus is None:
        return v
    other = run.get(f.minus)
    return None if other is None else v - other


def median(tool: Record, f: Figure) -> float | None:
    values = [v for r in tool["runs"] if r.get("ok") and (v := value(r, f)) is not None]
    return statistics.median(values) if values else None


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def _verdict(v: float | None, f: Figure, judged: bool) -> str:
    if f.limit is None:
        return ""
    if not judged:
        return "not judged"
    if v is None:
        return "n/a"
    return "MET" if v <= f.limit else "MISSED"


def _ours(rec: Record) -> Record | None:
    return rec["tools"][0] if rec.get("tools") else None


def _baseline(rec: Record) -> Record | None:
    return rec["tools"][1] if len(rec.get("tools", [])) > 1 else None


def table(rec: Record) -> str:
    """Every figure with a value in any binary's runs, medians per binary, and the target."""
    tools = rec["tools"]
    judged = rec["jobs"] >= TARGET_JOBS
    smoke = "" if judged else f"\n    smoke size: the targets are for {TARGET_JOBS:,} and are not judged"
    lines = [
        f"(h) a queue of {rec['jobs']:,} jobs, never fetched, and {rec['running']} more kept running from "
        f"/trickle/ while the runner's and the app's memory\n    are sampled ({rec['sample_s']:.0f} s "
        f"windows); a queue of {rec['small_jobs']:,} (and the same running) beside it for the growth{smoke}",
    ]
    head = f"{'figure':<44} {'target':>8}" + "".join(f" {t['label']:>18}" for t in tools)
    head += f" {'new/base':>9} {'verdict':>10}" if len(tools) > 1 else f" {'verdict':>10}"
    lines += [head, "-" * len(head)]
    for f in FIGURES:
        medians = [median(t, f) for t in tools]
        if all(m is None for m in medians):
            continue
        limit = "-" if f.limit is None else f"<= {f.limit:g}"
        row = f"{f.text:<44} {limit:>8}" + "".join(f" {_f(m):>18}" for m in medians)
        if len(tools) > 1:
            ratio = (
                medians[0] / medians[1] if medians[0] is not None and medians[1] and f.minus is None else None
            )
            row += f" {_f(ratio):>9}"
        lines.append(row + f" {_verdict(medians[0], f, judged):>10}")
    for t in tools:
        ok = sum(1 for r in t["runs"] if r.get("ok"))
        lines.append(f"  {t['label']}: {ok}/{len(t['runs'])} repetitions ok ({t['binary']})")
        lines.extend(f"    r{r.get('rep', '?')} FAILED: {r['error']}" for r in t["runs"] if not r.get("ok"))
    if not rec.get("app_measured", True):
        lines.append("  the app was not measured (no tmux)")
    return "\n".join(lines)


def target_lines(rec: Record) -> list[str]:
    """The issue's (h) targets for this getm-tui, one line each."""
    ours = _ours(rec)
    if ours is None:
        return []
    judged = rec["jobs"] >= TARGET_JOBS
    lines = []
    for f in FIGURES:
        if f.limit is None:
            continue
        m = median(ours, f)
        if m is None and f.key.startswith("ls_jsonl"):
            lines.append(f"  (h) {f.text}: not measured (this getm-tui's ls has no JSON-lines option)")
            continue
        lines.append(f"  (h) {f.text}: {_f(m)} (<= {f.limit:g}) {_verdict(m, f, judged)}")
    return lines


def baseline_lines(rec: Record | None) -> list[str]:
    """new/baseline for (h)'s times and peak memories (growths are differences, not ratios)."""
    if not rec:
        return []
    ours, base = _ours(rec), _baseline(rec)
    if ours is None or base is None:
        return []
    lines = []
    for f in FIGURES:
        if f.minus is not None:
            continue
        a, b = median(ours, f), median(base, f)
        if a is not None and b:
            lines.append(f"  (h) {f.text}: new/baseline = {a / b:.3f}")
    return lines
