"""The cases from the issue, as data: for each, the files a run must produce and the command lines of
getm-tui and of each peer. Commands are built per run from a fresh run directory, so no tool can reuse
another run's output (or resume from it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchlib.data import DataFile, Dataset, MiB

SLOW_RATE_MIB = 20  # nginx `limit_rate 20m` on /slow/, per connection
SLOW_CONNECTIONS = 16
QUEUE_ACTIVE = 16  # GETM_TUI_MAX_ACTIVE for cases (c) and (g), and the peers' parallelism there
BIG_CONNECTIONS = 8  # the peers' connections in (a), and hf_transfer's, and getm-tui's --no-sync run
HF_CHUNK = 10 * MiB  # huggingface_hub's chunk size for hf_transfer
DURABLE = "durable"  # the group of contenders whose file is on disk when they exit
NO_SYNC = "--no-sync"
OURS = "getm-tui"
BASELINE = "getm-tui@baseline"


@dataclass(frozen=True)
class Tools:
    """Paths of the programs that are available; None for a peer that could not be installed."""

    getm_tui: str
    curl: str | None
    wget2: str | None
    aria2c: str | None
    axel: str | None
    getm: str | None
    hf_transfer: str | None = None  # a python that imports hf_transfer
    dd: str | None = None
    sync: str | None = None
    get_flags: frozenset[str] = frozenset()  # the long options of `getm-tui get --help`
    pycurl: str | None = None  # a python that imports pycurl (case k's floor)


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class Contender:
    """One tool with one set of options. `build(run_dir)` gives the command that writes to run_dir/out;
    `stdout_md5`, when set, must appear in the command's output (the curl | md5sum pipeline).

    A contender is compared with the peers of its own `group` only: in (a), DURABLE holds what leaves
    the file on disk when it exits (getm-tui's default, dd conv=fsync, peers followed by sync), "" what
    may leave it in the page cache. A `limit` (dd) bounds what any tool can do, so it is never a peer
    to beat. `baseline_of` names the contender of the new getm-tui this one is the --baseline twin of."""

    label: str
    ours: bool
    build: Callable[[Path], Invocation]
    stdout_md5: str | None = None
    group: str = ""
    limit: bool = False
    baseline_of: str | None = None


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    files: tuple[DataFile, ...]  # expected in run_dir/out under their base names
    contenders: tuple[Contender, ...]
    sample_tree: bool = False
    notes: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def out_dir(run_dir: Path) -> Path:
    return run_dir / "out"


def _fixed(argv_for: Callable[[Path], list[str]]) -> Callable[[Path], Invocation]:
    """A builder from a function of the output directory, for the common one-command tools."""
    return lambda run_dir: Invocation(argv_for(out_dir(run_dir)))


# -- single-file commands, shared by (a), (b) and (d) ---------------------------------------------------


def getm_tui_get(
    tools: Tools, url: str, conns: int, checksum: str | None = None, group: str = "", no_sync: bool = False
) -> Contender:
    extra = ["--checksum", checksum] if checksum else []
    extra += [NO_SYNC] if no_sync else []
    label = f"{OURS} -c {conns}" + (" --checksum" if checksum else "") + (f" {NO_SYNC}" if no_sync else "")
    return Contender(
        label,
        True,
        _fixed(lambda o: [tools.getm_tui, "get", url, "-c", str(conns), "-o", str(o), "-q", *extra]),
        group=group,
    )


def _then_sync(
    sync: str, contender: Contender, sync_args: Callable[[Path], list[str]], label: str
) -> Contender:
    """The same command, then `sync` with `sync_args(run_dir)`, keeping the command's exit code if it
    fails: a DURABLE peer, ending when what it wrote is on disk."""
    script = 'n=$1; shift; a=("${@:1:n}"); shift "$n"; "$@" && exec "$0" "${a[@]}"'

    def build(run_dir: Path) -> Invocation:
        inner = contender.build(run_dir)
        args = sync_args(run_dir)
        return Invocation(
            ["bash", "-c", script, sync, str(len(args)), *args, *inner.argv], inner.env, inner.cwd
        )

    return Contender(f"{contender.label} + {label}", False, build, group=DURABLE)


def followed_by_sync(sync: str, contender: Contender, f: DataFile) -> Contender:
    """The same command, then `sync FILE` (fsync of the file it wrote), so it ends when its bytes are on
    disk as getm-tui's and dd conv=fsync's do. Only that file: a global sync would also wait for whatever
    else the machine is writing."""
    return _then_sync(sync, contender, lambda run_dir: [str(out_dir(run_dir) / f.name)], "sync")


def dd_limit(dd: str, source: Path, f: DataFile) -> Contender:
    """The durable limit: the same bytes copied from the served file (in the page cache after the first
    run) to the same target filesystem, fsynced at the end. No network, no HTTP: nothing downloads
    durably faster than this on this disk."""
    return Contender(
        "dd bs=4M conv=fsync (the durable limit)",
        False,
        _fixed(lambda o: [dd, f"if={source}", f"of={o / f.name}", "bs=4M", "conv=fsync", "status=none"]),
        group=DURABLE,
        limit=True,
    )


HF_SCRIPT = (
    "import sys, hf_transfer; hf_transfer.download(sys.argv[1], sys.argv[2], max_files=int(sys.argv[3]), "
    "chunk_size=int(sys.argv[4]), parallel_failures=3, max_retries=5)"
)


def hf_transfer_get(python: str, url: str, f: DataFile, conns: int) -> Contender:
    """hf_transfer's download() as huggingface_hub calls it (its chunk size, failures and retries), in a
    Python one-liner so it is timed like a command, interpreter start-up included."""
    return Contender(
        f"hf_transfer max_files={conns}",
        False,
        _fixed(lambda o: [python, "-c", HF_SCRIPT, url, str(o / f.name), str(conns), str(HF_CHUNK)]),
    )


def curl_get(curl: str, url: str, f: DataFile) -> Contender:
    # -q first: ignore any ~/.curlrc
    return Contender(
        "curl", False, _fixed(lambda o: [curl, "-q", "-s", "--fail", "-o", str(o / f.name), url])
    )


def wget2_get(wget2: str, url: str, f: DataFile, threads: int) -> Contender:
    chunk = max(MiB, f.size // threads)  # one chunk per thread
    return Contender(
        f"wget2 --max-threads={threads} --chunk-size={chunk // MiB}M",
        False,
        _fixed(
            lambda o: [
                wget2,
                "--no-config",
                "-q",
                f"--max-threads={threads}",
                f"--chunk-size={chunk}",
                "-O",
                str(o / f.name),
                url,
            ]
        ),
    )


def aria2c_get(aria2c: str, url: str, f: DataFile, conns: int, md5: str | None = None) -> Contender:
    extra = [f"--checksum=md5={md5}"] if md5 else []
    label = f"aria2c -x{conns} -s{conns} -k1M" + (" --checksum" if md5 else "")
    return Contender(
        label,
        False,
        _fixed(
            lambda o: [
                aria2c,
                "--no-conf",
                "-q",
                f"-x{conns}",
                f"-s{conns}",
                "-k1M",
                "--file-allocation=none",
                *extra,
                "-d",
                str(o),
                "-o",
                f.name,
                url,
            ]
        ),
    )


def axel_get(axel: str, url: str, f: DataFile, conns: int) -> Contender:
    return Contender(
        f"axel -n {conns}",
        False,
        _fixed(lambda o: [axel, "-q", "-n", str(conns), "-o", str(o / f.name), url]),
    )


def getm_get(getm: str, url: str, f: DataFile) -> Contender:
    # getm's --concurrency sizes its read-ahead buffer; a big file is still one keep-alive stream.
    return Contender(
        "getm 0.0.5 --concurrency 4",
        False,
        _fixed(lambda o: [getm, url, "-O", str(o / f.name), "--concurrency", "4"]),
    )


# -- the cases ----------------------------------------------------------------------------------------


def case_a(tools: Tools, data: Dataset, url: Callable[[str], str]) -> Case:
    f, u, n = data.big, url(data.big.rel), BIG_CONNECTIONS
    ours = [getm_tui_get(tools, u, 4, group=DURABLE), getm_tui_get(tools, u, n, group=DURABLE)]
    notes = []
    if NO_SYNC in tools.get_flags:
        ours.append(getm_tui_get(tools, u, n, no_sync=True))
    else:
        notes.append(f"skipped: {OURS} -c {n} {NO_SYNC} (not in this getm-tui's `get --help`)")
    peers: list[Contender] = []
    if tools.curl:
        peers.append(curl_get(tools.curl, u, f))
    if tools.wget2:
        peers.append(wget2_get(tools.wget2, u, f, n))
    if tools.aria2c:
        peers.append(aria2c_get(tools.aria2c, u, f, n))
    if tools.axel:
        peers.append(axel_get(tools.axel, u, f, n))
    if tools.getm:
        peers.append(getm_get(tools.getm, u, f))
    if tools.hf_transfer:
        peers.append(hf_transfer_get(tools.hf_transfer, u, f, n))
    durable: list[Contender] = []
    if tools.dd:
        durable.append(dd_limit(tools.dd, data.root / f.rel, f))
    if tools.sync:
        synced = [p for p in peers if p.label.split()[0] in ("curl", "aria2c", "wget2")]
        durable.extend(followed_by_sync(tools.sync, p, f) for p in synced)
    notes.append(
        f"groups: '{DURABLE}' rows end with the file on disk (fsync / sync) and are compared with each "
        "other; the rest may end with it in the page cache"
    )
    return Case(
        "a",
        f"one {f.size // MiB} MiB file, no rate limit",
        (f,),
        (*ours, *durable, *peers),
        sample_tree=True,
        notes=tuple(notes),
    )


def case_b(tools: Tools, data: Dataset, url: Callable[[str], str]) -> Case:
    f, u = data.medium, url("slow/" + data.medium.rel)
    n = SLOW_CONNECTIONS
    peers: list[Contender] = []
    if tools.aria2c:
        peers.append(aria2c_get(tools.aria2c, u, f, n))
    if tools.wget2:
        peers.append(wget2_get(tools.wget2, u, f, n))
    if tools.curl:
        peers.append(curl_get(tools.curl, u, f))
    ideal = n * SLOW_RATE_MIB
    return Case(
        "b",
        f"{f.size // MiB} MiB from /slow/ ({SLOW_RATE_MIB} MiB/s per connection)",
        (f,),
        (getm_tui_get(tools, u, n), *peers),
        notes=(
            f"ideal with {n} connections: {n} x {SLOW_RATE_MIB} MiB/s = {ideal} MiB/s; curl is 1 connection",
        ),
    )


def write_lists(
    files: tuple[DataFile, ...], url: Callable[[str], str], where: Path, stem: str = "urls"
) -> tuple[Path, Path]:
    """The URL list (getm-tui, aria2c, wget2) and curl's config of url/output pairs."""
    urls = [url(f.rel) for f in files]
    url_list = where / f"{stem}.txt"
    url_list.write_text("".join(u + "\n" for u in urls))
    curl_cfg = where / f"{stem}.curl.cfg"
    curl_cfg.write_text(
        "".join(f'url = "{u}"\noutput = "{f.name}"\n' for u, f in zip(urls, files, strict=True))
    )
    return url_list, curl_cfg


def _getm_tui_queue(tools: Tools, url_list: Path, max_active: int | None) -> Callable[[Path], Invocation]:
    """`add` then `run --once` against a queue nobody has used (a fresh data dir per run), both start-ups
    inside the measured time, as a user would see it. `max_active` None: getm-tui's defaults."""

    def build(run_dir: Path) -> Invocation:
        script = '"$0" add -i "$1" -d "$2" > /dev/null && exec "$0" run --once > /dev/null'
        env = {"GETM_TUI_DATA_DIR": str(run_dir / "state")}
        if max_active is not None:
            env["GETM_TUI_MAX_ACTIVE"] = str(max_active)
        return Invocation(["bash", "-c", script, tools.getm_tui, str(url_list), str(out_dir(run_dir))], env)

    return build


def curl_parallel(curl: str, curl_cfg: Path) -> Contender:
    """curl fetching the url/output pairs of `curl_cfg`, QUEUE_ACTIVE at a time: (c), (g) and (k)'s peer."""
    j = QUEUE_ACTIVE
    argv = [curl, "-q", "-s", "--fail", "-Z", "--parallel-max", str(j), "-K", str(curl_cfg)]
    return Contender(f"curl -Z --parallel-max {j}", False, _fixed(lambda o: [*argv, "--output-dir", str(o)]))


def queue_contenders(tools: Tools, url_list: Path, curl_cfg: Path) -> tuple[Contender, ...]:
    """getm-tui's queue with its defaults and with max_active=16, beside the peers with 16 at a time."""
    j = QUEUE_ACTIVE
    contenders = [
        Contender(f"{OURS} add+run --once (defaults)", True, _getm_tui_queue(tools, url_list, None)),
        Contender(f"{OURS} add+run --once (max_active={j})", True, _getm_tui_queue(tools, url_list, j)),
    ]
    if tools.aria2c:
        a = tools.aria2c
        contenders.append(
            Contender(
                f"aria2c -j{j}",
                False,
                _fixed(lambda o: [a, "--no-conf", "-q", f"-j{j}", "-i", str(url_list), "-d", str(o)]),
            )
        )
    if tools.curl:
        contenders.append(curl_parallel(tools.curl, curl_cfg))
    if tools.wget2:
        w = tools.wget2
        contenders.append(
            Contender(
                f"wget2 --max-threads={j}",
                False,
                _fixed(
                    lambda o: [
                        w,
                        "--no-config",
                        "-q",
                        f"--max-threads={j}",
                        "-i",
                        str(url_list),
                        "-P",
                        str(o),
                    ]
                ),
            )
        )
    return tuple(contenders)


def dir_synced(sync: str, contender: Contender) -> Contender:
    """The same command, then `sync -f` of the output directory's file system (syncfs): it ends with every
    file it wrote on disk, as getm-tui's queue does by default."""
    return _then_sync(sync, contender, lambda run_dir: ["-f", str(out_dir(run_dir))], "sync -f")


def copy_limit(sync: str, folder: Path) -> Contender:
    """Many files' durable limit: `cp` of the same files (in the page cache after the first run) to the
    same file system, then one syncfs. No network and no HTTP: creating the files and getting them on
    disk is what no durable tool avoids."""
    script = 'cp -R -- "$1/." "$2" && exec "$0" -f "$2"'
    return Contender(
        "cp -R + sync -f (the durable limit)",
        False,
        _fixed(lambda o: ["bash", "-c", script, sync, str(folder), str(o)]),
        group=DURABLE,
        limit=True,
    )


def queue_case(
    key: str,
    files: tuple[DataFile, ...],
    tools: Tools,
    data: Dataset,
    url: Callable[[str], str],
    lists_dir: Path,
) -> Case:
    """(c) and (g): many small files through the queue; the same commands, only the count differs, so
    their cost per file compares directly. getm-tui's queue leaves every file on disk by default, so its
    rows are also compared with curl followed by a sync and with the durable limit."""
    url_list, curl_cfg = write_lists(files, url, lists_dir, stem=f"urls-{key}")
    size = files[0].size if files else 0
    contenders = list(queue_contenders(tools, url_list, curl_cfg))
    notes = [f"{OURS}: a fresh GETM_TUI_DATA_DIR per run, add + run --once timed"]
    if tools.sync and files:
        contenders = [replace(c, group=DURABLE) if c.ours else c for c in contenders]
        contenders.append(copy_limit(tools.sync, data.root / files[0].rel.rsplit("/", 1)[0]))
        contenders.extend([dir_synced(tools.sync, c) for c in contenders if c.label.startswith("curl")])
        notes.append(
            f"groups: '{DURABLE}' rows end with every file on disk and are compared with each other; the "
            "issue's target compares getm-tui's rows with curl, aria2c and wget2 as they are"
        )
    return Case(
        key,
        f"{len(files):,} x {size // 1024} KiB through the queue",
        files,
        tuple(contenders),
        notes=tuple(notes),
    )


SMALL_FLOOR = Path(__file__).with_name("small_floor.py")


def floor_processes() -> int:
    """As many processes as the runner has job hosts on this machine (one per core it may use), so
    that the floors run in the hosts' shape; taken from the getm_tui this harness imports."""
    from getm_tui.runner.jobhost import host_count

    return host_count(QUEUE_ACTIVE)


def _floor(label: str, python: str, mode: str, url_list: Path, processes: int, per_process: int) -> Contender:
    """A floor of (k): small_floor.py's `mode` in `processes` processes of `per_process` each."""
    argv = [python, str(SMALL_FLOOR), mode, str(url_list)]
    shape = [str(processes), str(per_process)]
    return Contender(label, False, _fixed(lambda o: [*argv, str(o), *shape]), limit=True)


def case_k(tools: Tools, data: Dataset, url: Callable[[str], str], lists_dir: Path) -> Case:
    """(c)'s files, and what they cost without getm-tui's runner: its engine alone in the job hosts'
    shape (one thread each against a fast server), with 16 threads in all, and in one thread, and the
    same per-file work with the HTTP exchange in http.client and in libcurl (small_floor.py)."""
    url_list, curl_cfg = write_lists(data.small, url, lists_dir, stem="urls-k")
    n = len(data.small)
    python = str(Path(tools.getm_tui).with_name("python"))
    hosts = floor_processes()
    threads = QUEUE_ACTIVE // hosts
    shape = f"{hosts} processes x {threads}"
    contenders = [
        Contender(f"{OURS} add+run --once (defaults)", True, _getm_tui_queue(tools, url_list, None)),
        # The shape the job hosts keep against a fast server (a thread more only for a job that waited,
        # runner/hostthreads.py): the floor the report takes the runner's cost from.
        _floor(f"engine alone, {hosts} processes x 1 thread", python, "engine", url_list, hosts, 1),
        _floor(f"engine alone, {shape} threads", python, "engine", url_list, hosts, threads),
        # The same engine with no other thread in its process: what the GIL's turns between a host's
        # threads cost, each time one of them makes a system call.
        _floor("engine alone, 1 process x 1 thread", python, "engine", url_list, 1, 1),
        _floor(f"http.client, {shape} threads", python, "httpclient", url_list, hosts, threads),
    ]
    if tools.pycurl:
        contenders.append(
            _floor(f"libcurl multi (pycurl), {shape}", tools.pycurl, "pycurl", url_list, hosts, threads)
        )
    if tools.curl:
        contenders.append(curl_parallel(tools.curl, curl_cfg))
    return Case(
        "k",
        f"where (c)'s time goes: {n:,} x {data.small[0].size // 1024 if n else 0} KiB without the runner",
        data.small,
        tuple(contenders),
        notes=(
            "LIMIT rows here are floors, not peers: the engine alone (no supervisor, queue or messages), and "
            "the same per-file work over http.client and over libcurl; each ends with one sync -f of the "
            "output's file system",
        ),
    )


def _curl_md5_pipeline(curl: str, url: str, f: DataFile) -> Callable[[Path], Invocation]:
    script = 'set -o pipefail; "$0" -q -s --fail "$1" | tee "$2" | md5sum'
    return _fixed(lambda o: ["bash", "-c", script, curl, url, str(o / f.name)])


def case_d(tools: Tools, data: Dataset, url: Callable[[str], str]) -> Case:
    f, u = data.big, url(data.big.rel)
    contenders = [getm_tui_get(tools, u, 4, checksum=f"md5:{f.md5}")]
    if tools.aria2c:
        contenders.append(aria2c_get(tools.aria2c, u, f, 8, md5=f.md5))
    if tools.curl:
        contenders.append(
            Contender("curl | tee | md5sum", False, _curl_md5_pipeline(tools.curl, u, f), stdout_md5=f.md5)
        )
    return Case(
        "d",
        f"one {f.size // MiB} MiB file verified against a given md5",
        (f,),
        tuple(contenders),
        notes=("target: getm-tui <= 0.5 x aria2c's verified download",),
    )


def warm_up_case(tools: Tools, data: Dataset, url: Callable[[str], str], lists_dir: Path) -> Case:
    """One untimed run of each Python tool before any timing: it fills their bytecode cache (which a
    pip install would have made) and puts the served files in the page cache. No files are checked."""
    f, u = data.medium, url(data.medium.rel)
    url_list, _ = write_lists(data.small[:4], url, lists_dir, stem="warm-urls")
    contenders = [
        getm_tui_get(tools, u, 4),
        Contender(f"{OURS} add+run --once", True, _getm_tui_queue(tools, url_list, QUEUE_ACTIVE)),
    ]
    if tools.getm:
        contenders.append(getm_get(tools.getm, u, f))
    if tools.hf_transfer:
        contenders.append(hf_transfer_get(tools.hf_transfer, u, f, BIG_CONNECTIONS))
    return Case("warm-up", "untimed", (), tuple(contenders))


def with_baseline(case: Case, twin: Case) -> Case:
    """`case` with, right after each getm-tui contender, the same contender of `twin` (the case built for
    the --baseline binary), relabelled; a variant the baseline does not have (a flag it does not know)
    is left out and said in the notes."""
    theirs = {c.label: c for c in twin.contenders if c.ours}
    contenders: list[Contender] = []
    notes = list(case.notes)
    for c in case.contenders:
        contenders.append(c)
        if not c.ours:
            continue
        other = theirs.get(c.label)
        if other is None:
            notes.append(
                f"skipped: {baseline_label(c.label)} (this variant is not in the baseline's options)"
            )
            continue
        contenders.append(replace(other, label=baseline_label(c.label), baseline_of=c.label))
    return replace(case, contenders=tuple(contenders), notes=tuple(notes))


def baseline_label(label: str) -> str:
    return BASELINE + label.removeprefix(OURS)


def build_cases(
    keys: list[str],
    tools: Tools,
    data: Dataset,
    url: Callable[[str], str],
    work: Path,
    baseline: Tools | None = None,
) -> list[Case]:
    """The cases to run, in order. (e) is a view of (a)'s runs (every (a) run is measured for CPU and
    memory), so asking for (e) alone runs (a). With `baseline` (the same tools but another getm-tui),
    every getm-tui contender has its baseline twin beside it."""

    def builders(t: Tools) -> dict[str, Callable[[], Case]]:
        return {
            "a": lambda: case_a(t, data, url),
            "b": lambda: case_b(t, data, url),
            "c": lambda: queue_case("c", data.small, t, data, url, work),
            "d": lambda: case_d(t, data, url),
            "g": lambda: queue_case("g", data.many, t, data, url, work),
            "k": lambda: case_k(t, data, url, work),
        }

    wanted = sorted({"a" if k == "e" else k for k in keys})
    ours = builders(tools)
    theirs = builders(baseline) if baseline else {}
    cases = []
    for k in (k for k in wanted if k in ours):
        case = ours[k]()
        cases.append(with_baseline(case, theirs[k]()) if k in theirs else case)
    return cases
