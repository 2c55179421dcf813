"""The cases from the issue, as data: for each, the files a run must produce and the command lines of
getm-tui and of each peer. Commands are built per run from a fresh run directory, so no tool can reuse
another run's output (or resume from it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchlib.data import DataFile, Dataset, MiB

SLOW_RATE_MIB = 20  # nginx `limit_rate 20m` on /slow/, per connection
SLOW_CONNECTIONS = 16
QUEUE_ACTIVE = 16  # GETM_TUI_MAX_ACTIVE for case (c), and the peers' parallelism there


@dataclass(frozen=True)
class Tools:
    """Paths of the programs that are available; None for a peer that could not be installed."""

    getm_tui: str
    curl: str | None
    wget2: str | None
    aria2c: str | None
    axel: str | None
    getm: str | None


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class Contender:
    """One tool with one set of options. `build(run_dir)` gives the command that writes to run_dir/out;
    `stdout_md5`, when set, must appear in the command's output (the curl | md5sum pipeline)."""

    label: str
    ours: bool
    build: Callable[[Path], Invocation]
    stdout_md5: str | None = None


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


def getm_tui_get(tools: Tools, url: str, conns: int, checksum: str | None = None) -> Contender:
    extra = ["--checksum", checksum] if checksum else []
    label = f"getm-tui -c {conns}" + (" --checksum" if checksum else "")
    return Contender(
        label,
        True,
        _fixed(lambda o: [tools.getm_tui, "get", url, "-c", str(conns), "-o", str(o), "-q", *extra]),
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
    f, u = data.big, url(data.big.rel)
    peers: list[Contender] = []
    if tools.curl:
        peers.append(curl_get(tools.curl, u, f))
    if tools.wget2:
        peers.append(wget2_get(tools.wget2, u, f, 8))
    if tools.aria2c:
        peers.append(aria2c_get(tools.aria2c, u, f, 8))
    if tools.axel:
        peers.append(axel_get(tools.axel, u, f, 8))
    if tools.getm:
        peers.append(getm_get(tools.getm, u, f))
    ours = (getm_tui_get(tools, u, 4), getm_tui_get(tools, u, 8))
    return Case("a", f"one {f.size // MiB} MiB file, no rate limit", (f,), (*ours, *peers), sample_tree=True)


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


def _getm_tui_queue(tools: Tools, url_list: Path) -> Callable[[Path], Invocation]:
    """`add` then `run --once` against a queue nobody has used (a fresh data dir per run), both start-ups
    inside the measured time, as a user would see it."""

    def build(run_dir: Path) -> Invocation:
        script = '"$0" add -i "$1" -d "$2" > /dev/null && exec "$0" run --once > /dev/null'
        env = {"GETM_TUI_DATA_DIR": str(run_dir / "state"), "GETM_TUI_MAX_ACTIVE": str(QUEUE_ACTIVE)}
        return Invocation(["bash", "-c", script, tools.getm_tui, str(url_list), str(out_dir(run_dir))], env)

    return build


def case_c(tools: Tools, data: Dataset, url: Callable[[str], str], lists_dir: Path) -> Case:
    url_list, curl_cfg = write_lists(data.small, url, lists_dir)
    j = QUEUE_ACTIVE
    contenders = [
        Contender(f"getm-tui add+run --once (max_active={j})", True, _getm_tui_queue(tools, url_list))
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
        c = tools.curl
        argv = [c, "-q", "-s", "--fail", "-Z", "--parallel-max", str(j), "-K", str(curl_cfg)]
        contenders.append(
            Contender(f"curl -Z --parallel-max {j}", False, _fixed(lambda o: [*argv, "--output-dir", str(o)]))
        )
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
    size = data.small[0].size if data.small else 0
    return Case(
        "c",
        f"{len(data.small)} x {size // 1024} KiB through the queue",
        data.small,
        tuple(contenders),
        notes=(
            f"getm-tui: GETM_TUI_MAX_ACTIVE={j}, fresh GETM_TUI_DATA_DIR per run, add + run --once timed",
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
        Contender("getm-tui add+run --once", True, _getm_tui_queue(tools, url_list)),
    ]
    if tools.getm:
        contenders.append(getm_get(tools.getm, u, f))
    return Case("warm-up", "untimed", (), tuple(contenders))


def build_cases(
    keys: list[str], tools: Tools, data: Dataset, url: Callable[[str], str], work: Path
) -> list[Case]:
    """The cases to run, in order. (e) is a view of (a)'s runs (every (a) run is measured for CPU and
    memory), so asking for (e) alone runs (a)."""
    builders: dict[str, Callable[[], Case]] = {
        "a": lambda: case_a(tools, data, url),
        "b": lambda: case_b(tools, data, url),
        "c": lambda: case_c(tools, data, url, work),
        "d": lambda: case_d(tools, data, url),
    }
    wanted = sorted({"a" if k == "e" else k for k in keys})
    return [builders[k]() for k in wanted if k in builders]
