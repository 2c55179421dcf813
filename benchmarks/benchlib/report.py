"""Turning raw runs into the table, the target checks, the (e), (f) and (j) figures, the JSON file and the
plot.

Everything here works from the JSON-shaped results dict, so `run.py --report FILE` re-renders an old run
exactly as it was printed. Medians only: the machine is small and noisy, and a mean would follow the
outliers."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import app_drain, fleet, scale_report
from benchlib.cases import BASELINE, DURABLE, OURS, SLOW_CONNECTIONS, SLOW_RATE_MIB
from benchlib.data import GiB, MiB

Results = dict[str, Any]


@dataclass
class Row:
    """One contender of one case, summarized over its successful runs."""

    label: str
    ours: bool
    ok: int
    failed: int
    median: float | None
    low: float | None
    high: float | None
    mibs: float | None
    ratio: float | None = None  # ours / best peer of the same group, for our rows
    cpu_per_gib: float | None = None
    max_rss_mib: float | None = None
    tree_pss_mib: float | None = None
    per_file_ms: float | None = None
    cpu: float | None = None  # median CPU seconds (user + sys, children included)
    group: str = ""
    limit: bool = False
    baseline_of: str | None = None
    vs_limit: float | None = None  # ours / the limit of the same group
    vs_baseline: float | None = None  # new / its --baseline twin, on the new getm-tui's rows

    @property
    def peer(self) -> bool:
        return not self.ours and not self.limit

    @property
    def role(self) -> str:
        if self.limit:
            return "LIMIT"
        if self.baseline_of is not None:
            return "base"
        return "ours" if self.ours else "peer"


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(case: Results) -> list[Row]:
    """Every contender's row, with our rows' ratios: to the best peer and to the limit of their own group
    (a durable download against durable peers), and to their --baseline twin."""
    rows = [_row(c, case["bytes"], case.get("files", 1)) for c in case["contenders"]]
    for r in rows:
        if not r.ours:
            continue
        peers = [p.median for p in rows if p.peer and p.group == r.group and p.median is not None]
        limits = [p.median for p in rows if p.limit and p.group == r.group and p.median is not None]
        r.ratio = _ratio(r.median, min(peers) if peers else None)
        r.vs_limit = _ratio(r.median, min(limits) if limits else None)
        twin = next((b for b in rows if b.baseline_of == r.label), None)
        if twin is not None:
            r.vs_baseline = _ratio(r.median, twin.median)
    return rows


def _row(contender: Results, size: int, files: int) -> Row:
    runs = [r for r in contender["runs"] if r["ok"]]
    walls = [r["wall"] for r in runs]
    median = _median(walls)
    gib = size / GiB
    pss = _median([r["tree_pss_kib"] for r in runs if r.get("tree_pss_kib")])
    rss = _median([r["max_rss_kib"] for r in runs])
    cpu = _median([r["user"] + r["sys"] for r in runs])
    return Row(
        label=contender["label"],
        ours=contender["ours"],
        ok=len(runs),
        failed=len(contender["runs"]) - len(runs),
        median=median,
        low=min(walls) if walls else None,
        high=max(walls) if walls else None,
        mibs=size / MiB / median if median else None,
        cpu_per_gib=cpu / gib if cpu is not None and gib else None,
        max_rss_mib=rss / 1024 if rss is not None else None,
        tree_pss_mib=pss / 1024 if pss is not None else None,
        per_file_ms=median * 1000 / files if median is not None and files > 1 else None,
        cpu=cpu,
        group=contender.get("group", ""),
        limit=contender.get("limit", False),
        baseline_of=contender.get("baseline_of"),
    )


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(results: Results) -> str:
    """The one table: every case and contender, best first within a case."""
    head = (
        f"{'case':<4} {'tool':<56} {'role':<5} {'ok':>5} {'median s':>9} {'min s':>8} {'max s':>8} "
        f"{'MiB/s':>8} {'ms/file':>8} {'/best peer':>10} {'/limit':>7} {'new/base':>8}"
    )
    lines = [head, "-" * len(head)]
    for case in results["cases"]:
        rows = sorted(summarize(case), key=lambda r: (r.group, r.median is None, r.median or 0))
        for r in rows:
            group = f" [{r.group}]" if r.group else ""
            ok = f"{r.ok}/{r.ok + r.failed}"
            lines.append(
                f"{case['key']:<4} {r.label + group:<56} {r.role:<5} {ok:>5} {_f(r.median, '.3f'):>9} "
                f"{_f(r.low, '.3f'):>8} {_f(r.high, '.3f'):>8} {_f(r.mibs, '.1f'):>8} "
                f"{_f(r.per_file_ms, '.2f'):>8} {_f(r.ratio, '.3f'):>10} {_f(r.vs_limit, '.3f'):>7} "
                f"{_f(r.vs_baseline, '.3f'):>8}"
            )
        lines.append("")
    lines.append(
        "role: ours = this getm-tui; base = the --baseline getm-tui; peer = another tool; LIMIT = the\n"
        "durable limit (dd conv=fsync of the same bytes to the same disk, no network), or in (k) a floor\n"
        "(the same files without the runner): a reference, not a peer. Ours and base rows are compared\n"
        "only with the rows of their own [group]:\n"
        f"[{DURABLE}] = the file is on disk when the command ends (fsync, or followed by sync).\n"
        "/best peer and /limit: below 1.0 means getm-tui is faster; new/base: below 1.0 means this\n"
        "getm-tui is faster than the baseline (median over median, runs alternated in the same run)"
    )
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "MISSED")


def _peer(rows: list[Row], prefix: str, group: str = "") -> Row | None:
    return next(
        (r for r in rows if r.peer and r.group == group and r.label.startswith(prefix) and r.median), None
    )


def targets(results: Results) -> str:
    """The issue's targets, one line each, with the numbers behind the verdict."""
    by_key = {c["key"]: summarize(c) for c in results["cases"]}
    lines = ["targets (this getm-tui's rows; the baseline's are compared in new/base):"]
    lines.extend(case_a_targets(by_key.get("a", [])))
    for r in _new(by_key.get("b", [])):
        ideal = SLOW_CONNECTIONS * SLOW_RATE_MIB
        share = r.mibs / ideal if r.mibs else None
        ok = None if r.ratio is None or share is None else (r.ratio <= 1.0 and share >= 0.9)
        lines.append(
            f"  (b) {r.label}: ours/best peer = {_f(r.ratio, '.3f')} (<= 1.0), {_f(r.mibs, '.1f')} MiB/s = "
            f"{_f(share and share * 100, '.0f')}% of the ideal {ideal} MiB/s (>= 90%) {_verdict(ok)}"
        )
    for key in ("c", "g"):
        lines.extend(queue_targets(key, by_key.get(key, [])))
    if "c" in by_key and "g" in by_key:
        lines.extend(per_file_targets(by_key["c"], by_key["g"]))
    if "k" in by_key:
        lines.extend(floor_lines(by_key["k"], next(c for c in results["cases"] if c["key"] == "k")))
    rows = by_key.get("d", [])
    aria = _peer(rows, "aria2c")
    for r in _new(rows):
        vs = _ratio(r.median, aria.median if aria else None)
        lines.append(
            f"  (d) {r.label}: ours/aria2c = {_f(vs, '.3f')} (<= 0.5) "
            f"{_verdict(_le(vs, 0.5))}" + ("" if aria else "  [aria2c not measured]")
        )
    if results.get("queue_scale"):
        lines.extend(scale_report.target_lines(results["queue_scale"]))
    if results.get("responsiveness"):
        lines.append(responsiveness_targets(results))
    if results.get("app_drain"):
        lines.append(app_drain.target_line(results["app_drain"]))
    return "\n".join(lines)


def floor_lines(rows: list[Row], case: Results) -> list[str]:
    """(k), figures without a target: each row's wall and CPU time per file, and what the runner adds to
    the engine alone in the job hosts' shape, the first engine row (the supervisor, the queue, the
    messages), per file."""
    files = max(1, case.get("files", 1))
    lines = ["  (k) per file, wall / CPU (user + sys, children; the server not counted):"]
    for r in rows:
        cpu_ms = r.cpu * 1000 / files if r.cpu is not None else None
        lines.append(f"      {r.label:<52} {_f(r.per_file_ms, '.3f')} ms / {_f(cpu_ms, '.3f')} ms")
    ours = next((r for r in _new(rows)), None)
    engine = next((r for r in rows if r.limit and r.label.startswith("engine")), None)
    if ours is not None and engine is not None and ours.cpu is not None and engine.cpu is not None:
        wall = (ours.median or 0.0) - (engine.median or 0.0)
        lines.append(
            f"      the runner adds {wall * 1000 / files:.3f} ms wall and "
            f"{(ours.cpu - engine.cpu) * 1000 / files:.3f} ms CPU a file to the engine alone"
        )
    return lines


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _new(rows: list[Row]) -> list[Row]:
    """This getm-tui's rows (not the baseline's)."""
    return [r for r in rows if r.ours and r.baseline_of is None]


def _all_le(pairs: list[tuple[float | None, float]]) -> bool | None:
    known = [_le(v, limit) for v, limit in pairs if v is not None]
    return None if not known else all(known)


LIMIT_SLACK = 1.10  # "within 10% of dd conv=fsync"


def case_a_targets(rows: list[Row]) -> list[str]:
    """(a): a durable getm-tui within 10% of the durable limit and ahead of every peer followed by sync;
    with --no-sync, at least as fast as hf_transfer (same connections) and as curl."""
    lines = []
    for r in _new(rows):
        if r.group == DURABLE:
            ok = _all_le([(r.vs_limit, LIMIT_SLACK), (r.ratio, 1.0)])
            lines.append(
                f"  (a) {r.label}: ours/dd limit = {_f(r.vs_limit, '.3f')} (<= {LIMIT_SLACK}), "
                f"ours/best peer + sync = {_f(r.ratio, '.3f')} (<= 1.0) {_verdict(ok)}"
            )
        else:
            hf, curl = _peer(rows, "hf_transfer", r.group), _peer(rows, "curl", r.group)
            vs_hf = _ratio(r.median, hf.median if hf else None)
            vs_curl = _ratio(r.median, curl.median if curl else None)
            lines.append(
                f"  (a) {r.label}: ours/hf_transfer = {_f(vs_hf, '.3f')} (<= 1.0), ours/curl = "
                f"{_f(vs_curl, '.3f')} (<= 1.0), ours/best peer = {_f(r.ratio, '.3f')} "
                f"{_verdict(_all_le([(vs_hf, 1.0), (vs_curl, 1.0)]))}"
            )
    return lines


def queue_targets(key: str, rows: list[Row]) -> list[str]:
    """(c) and (g): no longer than curl --parallel, and ahead of aria2c and wget2."""
    lines = []
    peers = {name: _peer(rows, name) for name in ("curl", "aria2c", "wget2")}
    for r in _new(rows):
        ratios = {n: _ratio(r.median, p.median if p else None) for n, p in peers.items()}
        shown = ", ".join(f"ours/{n} = {_f(v, '.3f')}" for n, v in ratios.items())
        lines.append(
            f"  ({key}) {r.label}: {shown} (each <= 1.0) "
            f"{_verdict(_all_le([(v, 1.0) for v in ratios.values()]))}"
        )
        if r.group == DURABLE:
            lines.append(
                f"      with every file on disk at the end, as ours: ours/best peer + sync -f = "
                f"{_f(r.ratio, '.3f')}, ours/the durable limit = {_f(r.vs_limit, '.3f')} (figures)"
            )
    return lines


PER_FILE_SLACK = 1.10  # "the same cost per file", read as within 10%


def per_file_targets(c: list[Row], g: list[Row]) -> list[str]:
    """(g) against (c): the cost per file of the same getm-tui contender with 10x the files."""
    lines = []
    for r in _new(g):
        small = next((x for x in c if x.label == r.label), None)
        before = small.per_file_ms if small else None
        vs = _ratio(r.per_file_ms, before)
        lines.append(
            f"  (g/c) {r.label}: ms per file {_f(r.per_file_ms, '.2f')} (g) / {_f(before, '.2f')} (c) = "
            f"{_f(vs, '.3f')} (<= {PER_FILE_SLACK}) {_verdict(_le(vs, PER_FILE_SLACK))}"
        )
    return lines


def baseline_ratios(results: Results) -> str:
    """Every new/baseline ratio of the run in one place: how the team shows a change made nothing slower."""
    lines = []
    for case in results["cases"]:
        for r in _new(summarize(case)):
            if r.vs_baseline is not None:
                lines.append(f"  ({case['key']}) {r.label}: new/baseline = {r.vs_baseline:.3f}")
    lines.extend(scale_report.baseline_lines(results.get("queue_scale")))
    if not lines:
        return ""
    return "\n".join([f"{OURS} / {BASELINE} (median / median; below 1.0: the new one is faster):", *lines])


def resources(results: Results) -> str:
    """(e): CPU per GiB and peak memory for case (a)'s contenders (getm-tui -c 8 is left out, as in the
    issue). %M is the largest single process; tree PSS is the sampled peak of the whole tree."""
    case = next((c for c in results["cases"] if c["key"] == "a"), None)
    if case is None:
        return "(e) not measured: it is taken from case (a)'s runs"
    head = f"{'tool':<44} {'CPU s/GiB':>10} {'max RSS MiB (1 proc)':>21} {'tree PSS MiB':>13}"
    lines = ["(e) CPU (user+sys, children included) per GiB and peak memory, case (a)", head, "-" * len(head)]
    for r in summarize(case):
        if r.ours and r.label.split(" ", 1)[-1] != "-c 4":
            continue
        mark = "*" if r.ours else " "
        lines.append(
            f"{mark}{r.label:<43} {_f(r.cpu_per_gib, '.2f'):>10} {_f(r.max_rss_mib, '.1f'):>21} "
            f"{_f(r.tree_pss_mib, '.1f'):>13}"
        )
    lines.append(
        "max RSS is GNU time's %M: the largest single process, not the sum over a multi-process tool;\n"
        "tree PSS sums every process's proportional set size (shared memory split between its users),\n"
        "sampled every 50 ms from /proc (a floor: peaks between samples are missed). Server CPU excluded."
    )
    return "\n".join(lines)


def notes(results: Results) -> str:
    lines = []
    for case in results["cases"]:
        lines.extend(f"({case['key']}) {n}" for n in case.get("notes", []))
    lines.extend(f"skipped: {s}" for s in results.get("skipped", []))
    return "\n".join(lines)


# -- (f): the app under load ---------------------------------------------------------------------------


@dataclass
class Latency:
    """Key press -> screen, over the presses of one method; a press never seen counts as the timeout."""

    n: int
    missed: int
    median: float | None
    p95: float | None
    high: float | None


def latency(values: list[float | None], timeout_ms: float) -> Latency:
    seen = [v if v is not None else timeout_ms for v in values]
    if not seen:
        return Latency(0, 0, None, None, None)
    ordered = sorted(seen)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank
    return Latency(len(seen), values.count(None), statistics.median(seen), p95, ordered[-1])


def _presses(part: Results, key: str | None = None) -> list[float | None]:
    return [p["ms"] for p in part.get("presses", []) if key is None or p["key"] == key]


def _lat(lat: Latency) -> str:
    missed = f", {lat.missed} not seen in time" if lat.missed else ""
    return (
        f"median {_f(lat.median, '.1f')} ms, p95 {_f(lat.p95, '.1f')} ms, max {_f(lat.high, '.1f')} ms "
        f"({lat.n} presses{missed})"
    )


def _f_cpu(term: Results) -> float | None:
    """The CPU figure (f) is judged on: the larger of what the app used at its normal priority and what
    it took when given priority. When the downloads keep every core busy the first is only the share
    the scheduler gave it (its work queued up meanwhile); the second is what it asks for."""
    figures = [term.get("cpu_pct"), term.get("demand", {}).get("cpu_pct")]
    known = [f for f in figures if f is not None]
    return max(known) if known else None


def _f_verdicts(rec: Results) -> tuple[Latency | None, float | None]:
    term = rec.get("terminal", {})
    lat = latency(_presses(term), rec["timeout_ms"]) if "presses" in term else None
    return lat, _f_cpu(term)


def _loop(part: Results) -> str:
    if "loop_on_cpu_pct" not in part:
        return ""
    return (
        f"; event loop (main thread) on a CPU {part['loop_on_cpu_pct']:.0f}%, "
        f"runnable but waiting for one {part['loop_waiting_pct']:.0f}% of the time"
    )


def _by_key(part: Results, timeout: float) -> list[str]:
    keys = sorted({p["key"] for p in part.get("presses", [])}, key=lambda k: (k != "down", k))
    return [f"      {key:<4} {_lat(latency(_presses(part, key), timeout))}" for key in keys]


def responsiveness(results: Results) -> str:
    """(f): the app's CPU and key -> redraw latency, in tmux and in process, with the tmux baseline."""
    rec = results.get("responsiveness")
    if rec is None:
        return "(f) the app's responsiveness: not measured in this run (--cases f)"
    timeout = rec["timeout_ms"]
    lines = [
        f"(f) the app under load: {rec['jobs']} jobs, {rec['active']} active at full speed "
        f"({rec['file_bytes'] // MiB} MiB each, unthrottled) on {rec.get('nproc', '?')} CPUs; "
        f"{rec.get('jobs_done', '?')} finished and {rec.get('jobs_failed', '?')} failed during the case "
        f"({rec.get('seconds', '?')} s)"
    ]
    term = rec.get("terminal", {})
    if "error" in term:
        lines.append(f"  in tmux: FAILED: {term['error']}")
    if "cpu_pct" in term:
        lines.append(
            f"  in tmux ({term.get('tmux', '?')}, {term.get('size', '?')}), shown {term.get('rate_shown')}, "
            f"active each second: {' '.join(map(str, term.get('active_seen', [])))}"
        )
        if term.get("first_rows_s") is not None:
            lines.append(f"    first rows on the screen {term['first_rows_s']:.2f} s after the app started")
        lines.append(
            f"    app process CPU: {term['cpu_pct']:.1f}% of one core over {term['wall_s']:.1f} s "
            f"(per second: {' '.join(f'{v:.0f}' for v in term.get('cpu_pct_per_second', []))})" + _loop(term)
        )
        lines.append(
            f"    supervisor and workers (not counted): {term.get('tree_cpu_pct', 0):.0f}% of one core"
        )
        demand = term.get("demand", {})
        if "error" in demand:
            lines.append(f"    given priority: not measured ({demand['error']})")
        elif demand:
            lines.append(
                f"    given priority (nice {demand['nice']}): {demand['cpu_pct']:.1f}% of one core over "
                f"{demand['wall_s']:.1f} s" + _loop(demand)
            )
        lines.append(
            f"    terminal output: {term['terminal_bytes_per_s'] / 1024:.1f} KiB/s "
            f"(one full screen with its escapes: {term['full_screen_bytes'] / 1024:.1f} KiB); "
            f"all writes: {term['wchar_per_s'] / 1024:.1f} KiB/s"
        )
    if "presses" in term:
        raw = latency(_presses(term), timeout)
        lines.append(f"    key -> screen, raw: {_lat(raw)}")
        lines.extend(_by_key(term, timeout))
        base = latency(term.get("baseline_ms", []), timeout)
        lines.append(f"    baseline (a `stty raw; cat` pane, same tmux): {_lat(base)}")
        if raw.median is not None and base.median is not None:
            lines.append(
                f"    raw minus the baseline's median: median {raw.median - base.median:.1f} ms, "
                f"p95 {_f(raw.p95 and raw.p95 - base.median, '.1f')} ms"
            )
    inproc = rec.get("in_process", {})
    if "error" in inproc:
        lines.append(f"  in process: FAILED: {inproc['error']}")
    if "cpu_pct" in inproc:
        lines.append("  in process (Textual run_test, headless: frames composed, no terminal output)")
        lines.append(
            f"    process CPU: {inproc['cpu_pct']:.1f}% of one core over {inproc['wall_s']:.1f} s "
            f"(the helper thread's {inproc.get('reaper_cpu_s', 0):.2f} s taken out)" + _loop(inproc)
        )
        if "frames_per_s" in inproc:
            lines.append(f"    frames composed: {inproc['frames_per_s']:.1f} per second")
    if "presses" in inproc:
        lines.append(f"    key -> composed frame: {_lat(latency(_presses(inproc), timeout))}")
        lines.extend(_by_key(inproc, timeout))
    if rec.get("failures"):
        lines.append(f"  job failures: {'; '.join(rec['failures'])}")
    return "\n".join(lines)


def responsiveness_targets(results: Results) -> str:
    """(f)'s two targets, judged in the real terminal: the raw p95 (tmux's own cost included) and the
    app's CPU (the larger of its share and its demand, see _f_cpu)."""
    rec = results.get("responsiveness")
    if rec is None:
        return ""
    lat, cpu = _f_verdicts(rec)
    limit_ms, limit_cpu = rec["targets"]["redraw_ms"], rec["targets"]["cpu_pct"]
    ok_lat = None if lat is None or lat.p95 is None else lat.p95 <= limit_ms
    ok_cpu = None if cpu is None else cpu < limit_cpu
    p95 = _f(lat.p95 if lat else None, ".1f")
    return (
        f"  (f) key press -> redraw in tmux: p95 {p95} ms (<= {limit_ms:.0f} ms) {_verdict(ok_lat)}\n"
        f"  (f) app process CPU with {rec['active']} active: {_f(cpu, '.1f')}% of one core "
        f"(< {limit_cpu:.0f}%) {_verdict(ok_cpu)}"
    )


def render(results: Results) -> str:
    head = (
        f"getm-tui benchmark {results['started']}  repeat={results['repeat']}  quick={results['quick']}  "
        f"target={results['target_dir']} ({results['target_fs']})"
    )
    src = results.get("getm_tui", {})
    if src:
        dirty = " (with local changes)" if src["dirty"] else ""
        head += f"\ngetm-tui {src['commit']}{dirty} from {src['package']}"
    if src.get("changed_during_run"):
        changed = ", ".join(src["changed_during_run"])
        head += f"\nWARNING: getm-tui sources changed during the run ({changed}): runs may mix versions"
    if results.get("interrupted"):
        head += "  [INTERRUPTED: partial results]"
    parts = [head]
    if results["cases"]:
        parts.append(table(results))
    parts.append(targets(results))
    if results["cases"]:
        parts.append(resources(results))
    if results.get("queue_scale"):
        parts.append(scale_report.table(results["queue_scale"]))
    if results.get("fleet"):
        parts.append(fleet.table(results["fleet"]))
    parts.append(responsiveness(results))
    if results.get("app_drain"):
        parts.append(app_drain.table(results["app_drain"]))
    if results["cases"] or results.get("queue_scale"):
        ratios = baseline_ratios(results)
        if ratios:
            parts.append(ratios)
    if results["cases"] or results.get("skipped"):
        parts.append(notes(results))
    return "\n\n".join(parts)


def write_json(results: Results, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{results['started'].replace(':', '-')}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    return path


def plot(results: Results, path: Path) -> str:
    """A bar chart per case (median seconds, min..max whiskers, getm-tui highlighted). matplotlib is
    imported here only, so the harness runs without it; the message says what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"--plot: matplotlib is not installed (pip install matplotlib); {path} not written"
    cases = results["cases"]
    if not cases:
        return f"--plot: no timed case (a-d) in this run; {path} not written"
    fig, axes = plt.subplots(
        len(cases), 1, figsize=(9, 2.2 + 0.45 * sum(len(c["contenders"]) for c in cases))
    )
    for ax, case in zip([axes] if len(cases) == 1 else axes, cases, strict=True):
        rows = [r for r in summarize(case) if r.median is not None]
        ys = range(len(rows))
        err = [[r.median - r.low for r in rows], [r.high - r.median for r in rows]]  # type: ignore[operator]
        colors = ["tab:orange" if r.ours else "tab:gray" for r in rows]
        ax.barh(list(ys), [r.median for r in rows], xerr=err, color=colors, capsize=3)
        ax.set_yticks(list(ys), [r.label for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"({case['key']}) {case['title']}", fontsize=9)
        ax.set_xlabel("seconds (median, min..max)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot written to {path}"
