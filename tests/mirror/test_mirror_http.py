"""`getm-tui mirror` of trees served by Python's http.server: mirrored byte for byte by `run --once`, then
current, then just what changed; published sums files; --delete, --depth, --match and --exclude; hostile
links; and the one line and exit code of each mistake."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.helpers.runner_util import cli, jobs
from tests.mirror.trees import FILES, files_under, make_tree, write_md5sums


def mirror(data: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, int]:
    """(queued, current) from a successful `mirror` run."""
    out = cli(data, "mirror", *args, env=env)
    assert out.returncode == 0, out.stderr
    m = re.search(r"(?:would queue|queued) (\d+), (\d+) already current", out.stdout)
    assert m, out.stdout
    return int(m.group(1)), int(m.group(2))


def run_once(data: str) -> None:
    out = cli(data, "run", "--once", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_a_tree_is_mirrored_then_current_then_only_what_changed(tree_server, tmp_path: Path) -> None:
    remote, url = tree_server
    make_tree(remote)
    write_md5sums(remote / "data", ["one.fa.gz", "deep/two.fa.gz"])
    dest, data = tmp_path / "dest", str(tmp_path / "q")

    assert mirror(data, url, str(dest)) == (6, 0)
    run_once(data)
    assert files_under(dest) == files_under(remote)
    verdicts = {j["name"]: j["verdict"] for j in jobs(data)}
    assert verdicts["one.fa.gz"] == verdicts["two.fa.gz"] == "verified"  # by the published MD5SUMS
    assert verdicts["a.txt"] == "unverified"  # not listed there, and not refused for that
    assert mirror(data, url, str(dest)) == (0, 6)

    (remote / "a.txt").write_bytes(b"alpha, longer now\n")  # a new size
    assert mirror(data, url, str(dest)) == (1, 5)
    assert mirror(data, url, str(dest)) == (0, 5)  # queued and not finished: not queued twice
    run_once(data)
    changed = remote / "données" / "été ü.txt"
    changed.write_bytes(b"unicode X\n".ljust(len(FILES["données/été ü.txt"]), b"!"))  # the same size...
    os.utime(changed, (1_800_000_000, 1_800_000_000))  # ...a new time
    assert mirror(data, url, str(dest)) == (1, 5)
    run_once(data)
    assert files_under(dest) == files_under(remote)
    assert mirror(data, url, str(dest)) == (0, 6)


@pytest.mark.slow
def test_delete_removes_exactly_what_is_gone_from_the_source(tree_server, tmp_path: Path) -> None:
    remote, url = tree_server
    make_tree(remote)
    dest, data = tmp_path / "dest", str(tmp_path / "q")
    mirror(data, url, str(dest))
    run_once(data)
    (remote / "data" / "notes with spaces.txt").unlink()
    (remote / "données" / "été ü.txt").unlink()
    (dest / "keep.log").write_text("mine")  # excluded: never the mirror's to remove
    outside = tmp_path / "outside.txt"
    outside.write_text("not under DEST")

    dry = cli(data, "mirror", url, str(dest), "--delete", "--exclude", r"\.log$", "--dry-run")
    assert "would remove data/notes with spaces.txt" in dry.stdout
    assert (dest / "data" / "notes with spaces.txt").exists()
    out = cli(data, "mirror", url, str(dest), "--delete", "--exclude", r"\.log$")
    assert out.returncode == 0, out.stderr
    removed = sorted(line for line in out.stdout.splitlines() if line.startswith("removed "))
    assert removed == ["removed data/notes with spaces.txt", "removed données/été ü.txt"]
    assert not (dest / "données").exists()  # emptied, so gone too
    assert (dest / "keep.log").read_text() == "mine" and outside.exists()
    assert files_under(dest) == {**files_under(remote), "keep.log": b"mine"}


@pytest.mark.slow
def test_depth_match_and_exclude_select_by_relative_path(tree_server, tmp_path: Path) -> None:
    remote, url = tree_server
    make_tree(remote)
    write_md5sums(remote / "data", ["one.fa.gz"])
    dest, data = str(tmp_path / "dest"), str(tmp_path / "q")
    assert mirror(data, url, dest, "--dry-run", "--depth", "0") == (1, 0)  # a.txt
    assert mirror(data, url, dest, "--dry-run", "--depth", "1") == (5, 0)  # not data/deep/two.fa.gz
    # The sums file beside the data is kept whatever --match says; --exclude takes it out.
    assert mirror(data, url, dest, "--dry-run", "--match", r"\.fa\.gz$") == (3, 0)
    assert mirror(data, url, dest, "--dry-run", "--match", r"\.fa\.gz$", "--exclude", "SUMS$") == (2, 0)
    assert mirror(data, url, dest, "--dry-run", "--exclude", "^data/") == (2, 0)
    assert jobs(data) == []  # a dry run queues nothing


@pytest.mark.slow
def test_a_wrong_published_sum_fails_its_job(tree_server, tmp_path: Path) -> None:
    remote, url = tree_server
    make_tree(remote, {"good.bin": b"g" * 5000, "bad.bin": b"b" * 5000, "plain.bin": b"p"})
    write_md5sums(remote, ["good.bin", "bad.bin"], wrong=("bad.bin",))
    (remote / "plain.bin.sha256").write_text("0" * 64 + "\n")  # a per-file sum, wrong too
    dest, data = tmp_path / "dest", str(tmp_path / "q")
    mirror(data, url, str(dest))
    out = cli(data, "run", "--once", timeout=120)
    assert out.returncode == 1  # a job failed
    by_name = {j["name"]: j for j in jobs(data)}
    assert by_name["good.bin"]["verdict"] == "verified"
    assert by_name["bad.bin"]["state"] == by_name["plain.bin"]["state"] == "failed"
    assert "mismatch" in by_name["bad.bin"]["error"] and "md5 from MD5SUMS" in by_name["bad.bin"]["error"]
    assert "sha256 from plain.bin.sha256" in by_name["plain.bin"]["error"]
    assert not (dest / "bad.bin").exists() and not (dest / "plain.bin").exists()


def test_hostile_links_never_leave_the_destination(tree_server, tmp_path: Path) -> None:
    remote, url = tree_server
    (remote / "evil").mkdir()
    (remote / "evil" / "ok.txt").write_text("fine")
    (remote / "evil" / "index.html").write_text(
        '<html><body><a href="../../etc/passwd">up</a> <a href="/etc/passwd">abs</a>'
        '<a href="http://elsewhere.example/evil/x">other host</a> <a href="?C=M;O=A">sort</a>'
        '<a href="..%2F..%2Fescape">encoded</a> <a href="ok.txt">ok.txt</a></body></html>'
    )
    dest, data = tmp_path / "deep" / "dest", str(tmp_path / "q")
    out = cli(data, "mirror", url, str(dest))
    assert out.returncode == 0, out.stderr
    assert "queued 1, 0 already current" in out.stdout and "refused 1 unsafe names" in out.stdout
    assert "refusing 'evil/../../escape'" in out.stderr
    assert [(j["url"], j["name"]) for j in jobs(data)] == [(url + "evil/ok.txt", "ok.txt")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "q", "remote"]


@pytest.mark.slow
def test_mistakes_are_one_line_and_an_exit_code(tree_server, tmp_path: Path) -> None:
    remote, url = tree_server
    (remote / "file.txt").write_text("x")
    (remote / "plain").mkdir()
    (remote / "plain" / "index.html").write_text("")
    data, dest = str(tmp_path / "q"), str(tmp_path / "dest")
    config = tmp_path / "config.toml"
    config.write_text('[mirror.bad]\nsource = "http://h/"\ndestination = "/tmp/x"\ninterval = "soon"\n')
    cases = [
        (("gopher://host/dir/", dest), 2, "unsupported URL scheme"),
        (("file:///tmp/", dest), 2, "cannot list file:// URLs"),
        ((url + "file.txt", dest), 2, "names one file"),
        (("http://127.0.0.1:1/tree/", dest), 1, "cannot list http://127.0.0.1:1/tree/"),
        ((url, dest, "--match", "("), 2, "--match: not a regular expression"),
        (("nosuch",), 2, "no saved mirror 'nosuch'"),
    ]
    for argv, code, text in cases:
        out = cli(data, "mirror", *argv)
        assert (out.returncode, out.stdout) == (code, ""), (argv, out.stderr)
        assert text in out.stderr and len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr
    (remote / "plain" / "index.html").unlink()
    (remote / "text").write_text("not a page")
    broken = cli(data, "mirror", "--status", env={"GETM_TUI_CONFIG": str(config)})
    assert broken.returncode == 2 and "mirror.bad: interval: expected a duration" in broken.stderr
