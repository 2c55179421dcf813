"""The harness's new contenders as commands that really run: dd's durable copy, a peer followed by sync,
hf_transfer's one-liner (against a stand-in module that records its call), the getm-tui variants a
binary's options allow, and the --baseline twins beside each getm-tui contender."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchlib import install
from benchlib.cases import (
    BASELINE,
    DURABLE,
    HF_CHUNK,
    NO_SYNC,
    Contender,
    Invocation,
    Tools,
    build_cases,
    copy_limit,
    dd_limit,
    dir_synced,
    followed_by_sync,
    hf_transfer_get,
    out_dir,
)
from benchlib.data import DataFile, Dataset, write_random


def run(inv: Invocation) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **inv.env}
    return subprocess.run(inv.argv, env=env, cwd=inv.cwd, capture_output=True, text=True, timeout=60)


def a_run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    out_dir(run_dir).mkdir(parents=True)
    return run_dir


def test_dd_copies_the_same_bytes_durably(tmp_path):
    source = tmp_path / "big.bin"
    f = DataFile("big.bin", 5 * 1024 * 1024 + 3, write_random(source, 5 * 1024 * 1024 + 3))
    c = dd_limit("dd", source, f)
    assert c.limit and c.group == DURABLE and not c.ours
    run_dir = a_run_dir(tmp_path)
    done = run(c.build(run_dir))
    assert done.returncode == 0, done.stderr
    assert (out_dir(run_dir) / "big.bin").read_bytes() == source.read_bytes()


def test_a_peer_followed_by_sync_keeps_its_exit_code_and_syncs_its_file(tmp_path):
    f = DataFile("x.bin", 3, "")

    def writes(code: int) -> Contender:
        def build(run_dir: Path) -> Invocation:
            script = f"printf abc > {out_dir(run_dir) / f.name}; exit {code}"
            return Invocation(["sh", "-c", script])

        return Contender("curl -s", False, build)

    ok = followed_by_sync("sync", writes(0), f)
    assert ok.label == "curl -s + sync" and ok.group == DURABLE and not ok.limit
    run_dir = a_run_dir(tmp_path)
    done = run(ok.build(run_dir))
    assert done.returncode == 0, done.stderr
    assert (out_dir(run_dir) / "x.bin").read_bytes() == b"abc"
    # sync of a file that is not there fails: so a zero exit above means the file itself was synced
    missing = followed_by_sync("sync", Contender("none", False, lambda d: Invocation(["true"])), f)
    assert run(missing.build(a_run_dir(tmp_path / "2"))).returncode != 0
    failing = run(followed_by_sync("sync", writes(3), f).build(a_run_dir(tmp_path / "3")))
    assert failing.returncode == 3


def test_many_files_durable_limit_copies_them_all_and_a_dir_synced_peer_keeps_its_exit_code(tmp_path):
    folder = tmp_path / "www" / "small"
    folder.mkdir(parents=True)
    sums = {f"f{i}.bin": write_random(folder / f"f{i}.bin", 1000 + i) for i in range(5)}
    limit = copy_limit("sync", folder)
    assert limit.limit and limit.group == DURABLE and not limit.ours
    run_dir = a_run_dir(tmp_path)
    done = run(limit.build(run_dir))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out_dir(run_dir).iterdir()) == sorted(sums)
    assert all((out_dir(run_dir) / n).read_bytes() == (folder / n).read_bytes() for n in sums)

    def exits(code: int) -> Contender:
        return Contender("curl -Z", False, lambda d: Invocation(["sh", "-c", f"exit {code}"]))

    peer = dir_synced("sync", exits(0))
    assert peer.label == "curl -Z + sync -f" and peer.group == DURABLE and not peer.limit
    assert run(peer.build(a_run_dir(tmp_path / "2"))).returncode == 0
    assert run(dir_synced("sync", exits(4)).build(a_run_dir(tmp_path / "3"))).returncode == 4
    # sync -f of a directory that is not there fails: so the zero exit above synced the output's
    assert run(peer.build(tmp_path / "absent")).returncode != 0


def test_hf_transfer_one_liner_calls_download_with_the_case_settings(tmp_path):
    fake = tmp_path / "fake" / "hf_transfer"
    fake.mkdir(parents=True)
    record = tmp_path / "called.txt"
    (fake / "__init__.py").write_text(
        "def download(url, filename, **kw):\n"
        f"    open({str(record)!r}, 'w').write(repr((url, filename, sorted(kw.items()))))\n"
        "    open(filename, 'wb').write(b'x')\n"
    )
    f = DataFile("big.bin", 1, "")
    c = hf_transfer_get(sys.executable, "http://127.0.0.1:9/big.bin", f, 8)
    run_dir = a_run_dir(tmp_path)
    inv = c.build(run_dir)
    done = run(Invocation(inv.argv, {"PYTHONPATH": str(tmp_path / "fake")}))
    assert done.returncode == 0, done.stderr
    url, filename, kw = eval(record.read_text())
    assert url == "http://127.0.0.1:9/big.bin" and filename == str(out_dir(run_dir) / "big.bin")
    assert dict(kw) == {"max_files": 8, "chunk_size": HF_CHUNK, "parallel_failures": 3, "max_retries": 5}


def test_help_flags_lists_long_options_and_nothing_when_the_binary_fails(tmp_path):
    binary = tmp_path / "fake-getm-tui"
    binary.write_text(
        '#!/bin/sh\n[ "$1" = get ] || exit 2\n'
        'echo "usage: getm-tui get [-h] [--no-sync] [-c N] URL"\necho "  --part-size SIZE  largest part"\n'
    )
    binary.chmod(0o755)
    assert install.help_flags(str(binary), "get") == {"--no-sync", "--part-size"}
    assert install.help_flags(str(binary), "ls") == frozenset()
    assert install.help_flags(str(tmp_path / "absent"), "get") == frozenset()


def _dataset(tmp_path: Path) -> Dataset:
    big = DataFile("big.bin", 1 << 20, "")
    small = tuple(DataFile(f"small/f{i}.bin", 1024, "") for i in range(3))
    many = tuple(DataFile(f"many/f{i}.bin", 1024, "") for i in range(30))
    return Dataset(tmp_path / "www", big, DataFile("medium.bin", 1 << 20, ""), small, many)


def _tools(getm_tui: str, flags: frozenset[str]) -> Tools:
    return Tools(getm_tui, "curl", "wget2", "aria2c", None, None, "python3", "dd", "sync", flags)


def url(rel: str) -> str:
    return f"http://127.0.0.1:1/{rel}"


def test_case_a_has_the_limit_the_sync_peers_and_no_sync_only_when_known(tmp_path):
    new = _tools("/new/getm-tui", frozenset({NO_SYNC}))
    (a,) = build_cases(["a"], new, _dataset(tmp_path), url, tmp_path)
    by_label = {c.label: c for c in a.contenders}
    assert by_label["getm-tui -c 4"].group == DURABLE and by_label["getm-tui -c 8"].group == DURABLE
    assert (
        by_label[f"getm-tui -c 8 {NO_SYNC}"].group == ""
        and NO_SYNC in by_label[f"getm-tui -c 8 {NO_SYNC}"].build(tmp_path).argv
    )
    assert [c.label for c in a.contenders if c.limit] == ["dd bs=4M conv=fsync (the durable limit)"]
    synced = sorted(c.label.split()[0] for c in a.contenders if c.label.endswith("+ sync"))
    assert synced == ["aria2c", "curl", "wget2"]
    assert "hf_transfer max_files=8" in by_label

    (old,) = build_cases(["a"], _tools("/old/getm-tui", frozenset()), _dataset(tmp_path), url, tmp_path)
    assert not any(NO_SYNC in c.label for c in old.contenders)
    assert any(NO_SYNC in n and "skipped" in n for n in old.notes)


def test_baseline_twins_follow_their_contender_and_a_missing_variant_is_noted(tmp_path):
    new = _tools("/new/getm-tui", frozenset({NO_SYNC}))
    base = _tools("/old/getm-tui", frozenset())
    a, c, g = build_cases(["a", "c", "g"], new, _dataset(tmp_path), url, tmp_path, baseline=base)
    labels = [x.label for x in a.contenders]
    i = labels.index("getm-tui -c 4")
    assert labels[i + 1] == f"{BASELINE} -c 4"
    twin = a.contenders[i + 1]
    assert twin.ours and twin.baseline_of == "getm-tui -c 4" and twin.group == DURABLE
    assert twin.build(tmp_path).argv[0] == "/old/getm-tui"
    assert a.contenders[i].build(tmp_path).argv[0] == "/new/getm-tui"
    assert f"{BASELINE} -c 8 {NO_SYNC}" not in labels
    assert any(f"{BASELINE} -c 8 {NO_SYNC}" in n for n in a.notes)
    assert len(g.files) == 30 and len(c.files) == 3
    g_ours = [x.label for x in g.contenders if x.ours]
    assert g_ours == [
        "getm-tui add+run --once (defaults)",
        f"{BASELINE} add+run --once (defaults)",
        "getm-tui add+run --once (max_active=16)",
        f"{BASELINE} add+run --once (max_active=16)",
    ]
    defaults = g.contenders[0].build(tmp_path / "run")
    assert "GETM_TUI_MAX_ACTIVE" not in defaults.env and defaults.argv[3] == "/new/getm-tui"
    assert (tmp_path / "urls-g.txt").read_text().count("\n") == 30
    # (g)'s rows that leave every file on disk: ours, the durable limit and curl followed by sync -f
    durable = [x.label for x in g.contenders if x.group == DURABLE and x.baseline_of is None]
    assert durable == [
        "getm-tui add+run --once (defaults)",
        "getm-tui add+run --once (max_active=16)",
        "cp -R + sync -f (the durable limit)",
        "curl -Z --parallel-max 16 + sync -f",
    ]
    assert f"{tmp_path}/www/many" in g.contenders[-2].build(tmp_path / "run").argv
