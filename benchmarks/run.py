"""Benchmark getm-tui against curl, wget2, aria2c, axel, getm 0.0.5 and hf_transfer on a private nginx.

    python benchmarks/run.py [--cases a,b,c,d,e,f,g,h,i,j,k] [--repeat N] [--plot out.png] [--quick]
                             [--target-dir DIR] [--baseline OTHER/getm-tui]

Tools run alternately (round-robin within each repetition, the order rotated every repetition), so the
machine's noise falls on all of them alike; every run writes into a fresh directory on the same target
filesystem, is checked (exit code, sizes; md5 on the last repetition) and deleted, and the page cache's
dirty pages are synced before the next run starts. Case (f), the app's responsiveness under load, is
app_responsiveness.py, run last against the same server; case (h), a queue of a million, is
benchlib/queue_scale.py; case (i), a fleet on PostgreSQL, is benchlib/fleet.py; case (j), the app while
its runner drains small files, is benchlib/app_drain.py; case (k) times (c)'s files without the runner
(benchlib/small_floor.py). With --baseline, every
getm-tui contender is also run with another checkout's getm-tui, alternated with this one in the same
run. See benchmarks/README.md for what each case measures.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import app_responsiveness
from benchlib import app_drain, fleet, install, queue_scale, report
from benchlib.cases import (
    BASELINE,
    OURS,
    Case,
    Contender,
    Tools,
    build_cases,
    out_dir,
    warm_up_case,
    with_baseline,
)
from benchlib.data import Dataset, Sizes, make_dataset, md5_of
from benchlib.measure import Measurement, base_env, run_measured
from benchlib.server import Nginx

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
ALL_CASES = "a,b,c,d,e,f,g,h,i,j,k"
# Not round-robin cases of commands: (f) the app, (h) the million-job queue, (i) a fleet on PostgreSQL,
# (j) the app while small jobs finish.
UNTIMED = ("f", "h", "i", "j")


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=ALL_CASES, help=f"comma-separated subset of {ALL_CASES} (default: all)")
    p.add_argument("--repeat", type=int, default=None, help="repetitions per tool (default 5, --quick 2)")
    p.add_argument("--quick", action="store_true", help="2 repetitions, smaller files: a smoke run")
    p.add_argument("--plot", type=Path, help="write a PNG bar chart here (needs matplotlib)")
    p.add_argument("--target-dir", type=Path, help="where the tools write (default: a temp dir under /tmp)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before one run is killed")
    p.add_argument("--no-getm", action="store_true", help="skip installing and running getm 0.0.5")
    p.add_argument(
        "--baseline",
        metavar="GETM_TUI",
        help="another checkout's getm-tui (e.g. /work/base/.venv/bin/getm-tui): every getm-tui contender is "
        "run with it too, alternated, and the report gives new/baseline",
    )
    p.add_argument("--many-files", type=int, help="(g), (i): small files (default 10,000; --quick 500)")
    p.add_argument("--queue-jobs", type=int, help="(h): jobs queued (default 1,000,000; --quick 20,000)")
    p.add_argument("--app-jobs", type=int, default=app_responsiveness.JOBS, help="(f): jobs queued")
    p.add_argument(
        "--app-files", type=int, help="(j): small files the app's runner drains (20,000; --quick 8,000)"
    )
    p.add_argument("--report", type=Path, metavar="JSON", help="print (and --plot) an earlier results file")
    p.add_argument("--serve", action="store_true", help="only serve the data (for profiling) until Ctrl-C")
    args = p.parse_args(argv)
    args.cases = [k.strip() for k in args.cases.split(",") if k.strip()]
    unknown = sorted(set(args.cases) - set(ALL_CASES.split(",")))
    if unknown:
        p.error(f"unknown case(s): {', '.join(unknown)}")
    if args.repeat is None:
        args.repeat = 2 if args.quick else 5
    if args.baseline is not None:
        found = shutil.which(args.baseline)
        if found is None:
            p.error(f"--baseline: {args.baseline} is not an executable")
        args.baseline = str(Path(found).resolve())
    return args


# -- environment -----------------------------------------------------------------------------------------


def find_tools(work: Path, skipped: list[str], with_getm: bool) -> Tools:
    """Every tool, installed if missing; a peer that cannot be had is recorded in `skipped`."""

    def need(name: str) -> str | None:
        path = install.ensure_binary(name, log)
        if path is None:
            skipped.append(f"{name} (could not be installed)")
        return path

    getm = install.ensure_getm_peer(work / "getm-venv", log) if with_getm else None
    if with_getm and getm is None:
        skipped.append("getm 0.0.5 (pip install failed)")
    hf = install.ensure_module(work / "hf-venv", install.HF_TRANSFER, log)
    if hf is None:
        skipped.append("hf_transfer (pip install failed)")
    curl_py = install.ensure_module(work / "pycurl-venv", install.PYCURL, log)
    if curl_py is None:
        skipped.append("(k)'s libcurl floor: pycurl (pip install failed)")
    ours = install.getm_tui_binary()
    return Tools(
        getm_tui=ours,
        curl=need("curl"),
        wget2=need("wget2"),
        aria2c=need("aria2c"),
        axel=need("axel"),
        getm=getm,
        hf_transfer=hf,
        pycurl=curl_py,
        dd=need("dd"),
        sync=need("sync"),
        get_flags=install.help_flags(ours, "get"),
    )


def baseline_tools(tools: Tools, baseline: str) -> Tools:
    """The same peers with the --baseline getm-tui (and the options its `get --help` lists)."""
    return replace(tools, getm_tui=baseline, get_flags=install.help_flags(baseline, "get"))


def tool_versions(tools: Tools) -> dict[str, str]:
    """Each tool's version banner, for the JSON: results compare only between runs of the same versions."""
    paths = {
        "getm-tui": tools.getm_tui,
        "curl": tools.curl,
        "wget2": tools.wget2,
        "aria2c": tools.aria2c,
        "axel": tools.axel,
    }
    found = {name: install.version_of([path, "--version"]) for name, path in paths.items() if path}
    if tools.getm:
        found["getm"] = install.GETM_PEER
    if tools.hf_transfer:
        script = "import importlib.metadata as m; print('hf_transfer', m.version('hf_transfer'))"
        found["hf_transfer"] = install.version_of([tools.hf_transfer, "-c", script])
    if tools.pycurl:
        found["pycurl"] = install.version_of([tools.pycurl, "-c", "import pycurl; print(pycurl.version)"])
    return found


def filesystem_of(path: Path) -> str:
    """`fstype device` of the mount holding `path`: results on tmpfs and on disk are not comparable."""
    best, found = "", "?"
    real = str(path.resolve())
    with open("/proc/mounts") as f:
        for line in f:
            device, mount, fstype, *_ = line.split()
            if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, found = mount, f"{fstype} on {device}"
    return found


# -- running ---------------------------------------------------------------------------------------------


@dataclass
class Runner:
    """Runs contenders into fresh directories under `target` and checks what they wrote."""

    target: Path
    scratch: Path
    env: dict[str, str]
    timeout: float

    def run(self, case: Case, contender: Contender, rep: int, check_md5: bool) -> dict[str, Any]:
        run_dir = Path(tempfile.mkdtemp(prefix=f"{case.key}-r{rep}-", dir=self.target))
        try:
            out_dir(run_dir).mkdir()
            inv = contender.build(run_dir)
            m = run_measured(
                inv.argv,
                self.scratch,
                {**self.env, **inv.env},
                cwd=inv.cwd,
                timeout=self.timeout,
                sample_tree=case.sample_tree,
            )
            error = check(case, contender, run_dir, m, check_md5)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
            os.sync()  # the next tool must not pay for this one's writeback
        return {
            "rep": rep,
            "at": round(time.time(), 1),  # when the run ended (epoch seconds)
            "ok": error is None,
            "error": error,
            "md5_checked": check_md5,
            **m.to_json(),
        }


def check(case: Case, contender: Contender, run_dir: Path, m: Measurement, with_md5: bool) -> str | None:
    """Why the run does not count, or None: exit code, every file's size, the pipeline's printed md5, and
    (on the last repetition) every file's md5."""
    if m.returncode != 0:
        return f"exit {m.returncode}: {m.stderr_tail[-300:]}"
    if contender.stdout_md5 and contender.stdout_md5 not in m.stdout:
        return f"printed md5 differs: {m.stdout.strip()[:80]}"
    out = out_dir(run_dir)
    for f in case.files:
        path = out / f.name
        if not path.is_file():
            return f"missing {f.name}"
        if path.stat().st_size != f.size:
            return f"{f.name}: {path.stat().st_size} bytes, expected {f.size}"
    if with_md5:
        for f in case.files:
            if md5_of(out / f.name) != f.md5:
                return f"{f.name}: md5 differs"
    return None


def rotated(items: tuple[Contender, ...], by: int) -> list[Contender]:
    """The round-robin order for one repetition, started one place later each time, so no tool always
    runs right after the same other one (or first, on a cold machine)."""
    k = by % len(items) if items else 0
    return [*items[k:], *items[:k]]


def warm_up(case: Case, runner: Runner) -> None:
    log("\n== warm-up (untimed): fills the Python tools' bytecode cache and the page cache")
    for contender in case.contenders:
        result = runner.run(case, contender, -1, check_md5=False)
        status = "ok" if result["ok"] else f"FAILED: {result['error']}"
        log(f"  {contender.label:<47} {result['wall']:8.3f} s  {status}")


def warm_up_app(binaries: list[str], env: dict[str, str]) -> None:
    """Import the app (Textual's modules) once with each getm-tui's python before (f), (h) or (j) starts
    it: the bytecode cache under the temp dir starts empty, and the app's first start in a run would
    compile them (about a second on this project's machine) inside the time to its first rows."""
    log("\n== warm-up (untimed): the app's modules into the bytecode cache")
    for binary in binaries:
        started = time.perf_counter()
        python = str(Path(binary).with_name("python"))
        argv = [python, "-c", "import getm_tui.app.app"]
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        status = "ok" if done.returncode == 0 else f"FAILED: {done.stderr.strip()[-300:]}"
        log(f"  {binary:<47} {time.perf_counter() - started:8.3f} s  {status}")


def run_case(case: Case, runner: Runner, repeat: int, record: dict[str, Any]) -> None:
    """All repetitions of one case, filling `record` as runs finish (so Ctrl-C keeps what was done)."""
    log(f"\n== ({case.key}) {case.title}: {len(case.contenders)} tools x {repeat}")
    slots = {c.label: c_rec for c, c_rec in zip(case.contenders, record["contenders"], strict=True)}
    for rep in range(repeat):
        for contender in rotated(case.contenders, rep):
            result = runner.run(case, contender, rep, check_md5=rep == repeat - 1)
            slots[contender.label]["runs"].append(result)
            status = "ok" if result["ok"] else f"FAILED: {result['error']}"
            log(f"  r{rep} {contender.label:<44} {result['wall']:8.3f} s  {status}")


def case_record(case: Case) -> dict[str, Any]:
    return {
        "key": case.key,
        "title": case.title,
        "bytes": case.total_bytes,
        "files": len(case.files),
        "notes": list(case.notes),
        "contenders": [
            {
                "label": c.label,
                "ours": c.ours,
                "group": c.group,
                "limit": c.limit,
                "baseline_of": c.baseline_of,
                "command": shlex.join(c.build(Path("RUN")).argv),
                "runs": [],
            }
            for c in case.contenders
        ],
    }


# -- main ------------------------------------------------------------------------------------------------


def _sigterm_as_interrupt() -> None:
    """SIGTERM takes the same path as Ctrl-C, so nginx and the temp dirs are cleaned up either way."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def sizes_of(args: argparse.Namespace) -> Sizes:
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.many_files is not None:
        sizes = replace(sizes, many_count=args.many_files)
    if args.queue_jobs is not None:
        sizes = replace(sizes, queue_jobs=args.queue_jobs)
    return sizes


def prepare_data(work: Path, sizes: Sizes, with_many: bool) -> Dataset:
    many = f", {sizes.many_count} x {sizes.small_size >> 10} KiB" if with_many else ""
    log(
        f"writing data: {sizes.big >> 20} MiB, {sizes.medium >> 20} MiB, "
        f"{sizes.small_count} x {sizes.small_size >> 10} KiB{many}"
    )
    return make_dataset(work / "www", sizes, with_many=with_many)


def scale_case(
    args: argparse.Namespace,
    work: Path,
    target: Path,
    url: Any,
    data: Dataset,
    tmux: bool,
    results: dict[str, Any],
) -> None:
    """(h): the lists written once, then queue_scale's repetitions with this getm-tui and the baseline."""
    jobs = sizes_of(args).queue_jobs
    lists = work / "h-lists"
    lists.mkdir(exist_ok=True)
    log(f"writing (h)'s URL lists: {jobs:,} and {queue_scale.SMALL_QUEUE:,}")
    setup = queue_scale.ScaleSetup(
        jobs=jobs,
        big_list=queue_scale.write_queue_list(lists / "big.txt", jobs, url),
        small_list=queue_scale.write_queue_list(lists / "small.txt", queue_scale.SMALL_QUEUE, url),
        running_url=url("trickle/" + data.big.rel),
        work=target,
        env=base_env(work),
        timeout=args.timeout,
        sample=2.0 if args.quick else 5.0,
        log=log,
    )
    binaries = [(OURS, install.getm_tui_binary())]
    if args.baseline:
        binaries.append((BASELINE, args.baseline))

    def probe(binary: str, env: dict[str, str]) -> dict[str, Any]:
        return app_responsiveness.first_rows(binary, env, queue_scale.ROW_NAME, setup.sample, lambda m: None)

    flags = lambda b: install.help_flags(b, "ls")  # noqa: E731
    queue_scale.measure(binaries, setup, args.repeat, flags, probe if tmux else None, results)


def benchmark(args: argparse.Namespace, work: Path, target: Path, results: dict[str, Any]) -> None:
    skipped: list[str] = results["skipped"]
    nginx_bin = install.ensure_binary("nginx", log)
    if nginx_bin is None:
        raise SystemExit("nginx is needed and could not be installed")
    timed = [k for k in args.cases if k not in UNTIMED]  # (f) and (h) need no peers
    app_case, scale, app_drain_case = "f" in args.cases, "h" in args.cases, "j" in args.cases
    tmux = (app_case or scale or app_drain_case) and install.ensure_binary("tmux", log) is not None
    if (app_case or scale) and not tmux:
        skipped.append("(f) in a terminal and (h)'s app: tmux (could not be installed)")
    if app_drain_case and not tmux:
        skipped.append("(j): tmux (could not be installed)")
    tools = find_tools(work, skipped, with_getm=not args.no_getm) if timed else None
    ours = {OURS: install.version_of([install.getm_tui_binary(), "--version"])}
    results["versions"] = tool_versions(tools) if tools else ours
    if args.baseline:
        results["versions"][BASELINE] = install.version_of([args.baseline, "--version"])
    drain = "i" in args.cases
    data = (
        prepare_data(work, sizes_of(args), with_many="g" in timed or drain)
        if timed or scale or drain
        else None
    )
    root = data.root if data else work / "www"
    load = app_responsiveness.load_file(root, data.big if data else None, log) if app_case else None
    drain_count = args.app_files or (app_drain.QUICK_FILES if args.quick else app_drain.FILES)
    drain_files = app_drain.write_files(root, drain_count, log) if app_drain_case and tmux else ()
    if app_case or (scale and tmux) or drain_files:
        warm_up_app([install.getm_tui_binary(), *([args.baseline] if args.baseline else [])], base_env(work))
    with Nginx(nginx_bin, work / "nginx", root) as server:
        log(f"nginx (pid {server.proc.pid if server.proc else '?'}) on 127.0.0.1:{server.port}")
        if tools is not None and data is not None:
            theirs = baseline_tools(tools, args.baseline) if args.baseline else None
            cases = build_cases(timed, tools, data, server.url, work, baseline=theirs)
            runner = Runner(target, work / "scratch", base_env(work), args.timeout)
            warm = warm_up_case(tools, data, server.url, work)
            if theirs is not None:
                warm = with_baseline(warm, warm_up_case(theirs, data, server.url, work))
            warm_up(warm, runner)
            for case in cases:
                record = case_record(case)
                results["cases"].append(record)
                run_case(case, runner, args.repeat, record)
        if scale and data is not None:
            scale_case(args, work, target, server.url, data, tmux, results)
        if drain and data is not None:
            many = [(server.url(f.rel), f.name, f.size) for f in data.many]
            fleet.measure(
                install.getm_tui_binary(),
                base_env(work),
                many,
                target,
                args.quick,
                args.timeout,
                log,
                results,
            )
        if drain_files:
            results["app_drain"] = app_drain.measure(
                [server.url(f.rel) for f in drain_files],
                work,
                target,
                base_env(work),
                install.getm_tui_binary(),
                log,
                sample=3.0 if args.quick else app_drain.SAMPLE,
                windows=2 if args.quick else app_drain.WINDOWS,
            )
        if load is not None:
            results["responsiveness"] = app_responsiveness.measure(
                server.url(load.rel),
                load,
                work,
                target,
                base_env(work),
                install.getm_tui_binary(),
                log,
                sample=5.0 if args.quick else 10.0,
                presses=15 if args.quick else 30,
                press_budget=12.0 if args.quick else 25.0,
                jobs=args.app_jobs,
            )


def serve(args: argparse.Namespace, work: Path) -> None:
    """The benchmark's server and data without the runs, for profiling one tool by hand on the same
    files (`py-spy record -- getm-tui get URL ...`)."""
    nginx_bin = install.ensure_binary("nginx", log)
    if nginx_bin is None:
        raise SystemExit("nginx is needed and could not be installed")
    data = prepare_data(work, sizes_of(args), with_many=False)
    with Nginx(nginx_bin, work / "nginx", data.root) as server:
        log(f"big:    {server.url(data.big.rel)}  md5 {data.big.md5}")
        log(f"medium: {server.url('slow/' + data.medium.rel)}  md5 {data.medium.md5}")
        log(f"small:  {server.url(data.small[0].rel)} ... ({len(data.small)} files)")
        log("serving until Ctrl-C")
        while True:
            signal.pause()


def package_dir() -> Path:
    spec = importlib.util.find_spec("getm_tui")  # finds it without importing it
    return Path(spec.origin).parent if spec and spec.origin else HERE.parent / "getm_tui"


def source_mtimes() -> dict[str, float]:
    """Every getm-tui source file's mtime: compared at the end, it names files edited during a run
    (with others committing to the same tree, a run can otherwise mix two versions unnoticed)."""
    package = package_dir()
    return {str(f.relative_to(package)): f.stat().st_mtime for f in sorted(package.rglob("*.py"))}


def source_state() -> dict[str, Any]:
    """Which getm-tui code is measured: the git commit and whether the package has local changes."""
    package = package_dir()

    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(package), *argv], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    return {
        "package": str(package),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", ".")),
    }


def changed_since(before: dict[str, float]) -> list[str]:
    after = source_mtimes()
    return sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))


def new_results(args: argparse.Namespace, target: Path) -> dict[str, Any]:
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "repeat": args.repeat,
        "quick": args.quick,
        "cases_asked": args.cases,
        "baseline": args.baseline,
        "target_dir": str(target),
        "target_fs": filesystem_of(target),
        "getm_tui": source_state(),
        "host": {"nproc": os.cpu_count(), "kernel": os.uname().release, "python": sys.version.split()[0]},
        "python_tools": "bytecode cached under the temp dir (PYTHONPYCACHEPREFIX), warmed by an untimed run",
        "skipped": [],
        "cases": [],
        "interrupted": False,
    }


def finish(results: dict[str, Any], plot_to: Path | None, write: bool) -> None:
    log("\n" + report.render(results))
    if write:
        log(f"\nraw results: {report.write_json(results, RESULTS_DIR)}")
    if plot_to:
        log(report.plot(results, plot_to))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        import json

        finish(json.loads(args.report.read_text()), args.plot, write=False)
        return 0
    _sigterm_as_interrupt()
    work = Path(tempfile.mkdtemp(prefix="getm-bench-", dir="/tmp"))
    work.chmod(0o755)  # nginx's workers (nobody) read the data from here
    if args.serve:
        try:
            serve(args, work)
        except KeyboardInterrupt:
            return 0
        finally:
            shutil.rmtree(work, ignore_errors=True)
    target = Path(tempfile.mkdtemp(prefix="out-", dir=args.target_dir or work))
    results = new_results(args, target)
    sources = source_mtimes()
    code = 0
    try:
        benchmark(args, work, target, results)
    except KeyboardInterrupt:
        results["interrupted"] = True
        log("\ninterrupted: stopping nginx, removing temp files")
        code = 130
    finally:
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    changed = changed_since(sources)
    if changed:
        results["getm_tui"]["changed_during_run"] = changed
    if results["cases"] or any(results.get(k) for k in ("responsiveness", "queue_scale", "app_drain")):
        finish(results, args.plot, write=True)
    return code


def _check_gnu_time() -> None:
    if not Path("/usr/bin/time").exists():
        subprocess.run(["apt-get", "install", "-y", "-q", "time"], check=False)


if __name__ == "__main__":
    _check_gnu_time()
    sys.exit(main())
