"""`add -i`'s blocks of plain lines (cli/add_input.py): whatever a list holds, the jobs it gives and the
errors it words are those of the line-by-line path."""

from __future__ import annotations

import argparse

import pytest

from getm_tui.cli import add_input
from getm_tui.cli.add import _Adding, _specs
from getm_tui.cli.add_input import URLCheck
from getm_tui.cli.verbs import Usage

SHA256 = "ab" * 32


def _args(tmp_path, listing, **options) -> argparse.Namespace:
    values = {
        "urls": [],
        "input": str(listing),
        "output": None,
        "checksum": None,
        "checksums_file": None,
        "recursive": False,
        "dir": str(tmp_path),
        "config": None,
        "priority": None,
        "concurrency": None,
        "insecure": False,
    }
    values.update(options)
    return argparse.Namespace(**values)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few lines, so that a short list is many of them; and a count of those taken whole."""
    monkeypatch.setattr(add_input, "_BLOCK_CHARS", 200)
    taken = []
    plain = URLCheck.plain

    def spy(self, lines):
        whole = plain(self, lines)
        taken.append(whole)
        return whole

    monkeypatch.setattr(URLCheck, "plain", spy)
    return taken


def _both_ways(args, monkeypatch) -> tuple[list, list]:
    """The specs of an add with blocks of plain lines taken whole, and with every line parsed."""
    whole = list(_specs(args, _Adding()))
    monkeypatch.setattr(URLCheck, "plain", lambda self, lines: False)
    return whole, list(_specs(args, _Adding()))


def test_a_mixed_list_gives_the_jobs_of_the_line_by_line_path(tmp_path, monkeypatch, small_blocks):
    plain = [f"https://a.example/dir/f{i:04d}.bin" for i in range(40)]
    odd = [
        "# a comment",
        "",
        "   ",
        f"https://a.example/sum.bin sha256:{SHA256}",
        "https://a.example/frag.bin#part",
        "HTTPS://a.example/upper.bin",
        "https://b.example:8443/new-host.bin",
        "https://a.example/x.bin  # after the URL",
        "file:///tmp/local.bin",
        "https://a.example/q.bin?X-Amz-Signature=s",
        "https://a.example/ff\x0chttps://a.example/after-form-feed.bin",
        "https://a.example/caf%C3%A9.bin",
    ]
    lines = plain[:20] + odd + plain[20:] + [f"https://b.example:8443/{i}" for i in range(20)]
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(lines) + "\n")
    whole, parsed = _both_ways(_args(tmp_path, listing), monkeypatch)
    assert whole == parsed
    assert len(whole) == 40 + 20 + 10  # the form feed splits its line in two
    assert whole[20]["checksums"] == ["sha256:" + SHA256]
    assert any(small_blocks) and not all(small_blocks)


def test_an_error_after_blocks_taken_whole_names_its_line(tmp_path, small_blocks):
    lines = [f"https://a.example/{i}.bin" for i in range(300)] + ["example.org/no-scheme"]
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(lines) + "\n")
    with pytest.raises(Usage, match=rf"\(line 301 of {listing}\)"):
        list(_specs(_args(tmp_path, listing), _Adding()))
    assert any(small_blocks)


def test_blocks_are_not_taken_whole_when_an_option_may_apply_to_one_url(tmp_path, small_blocks):
    listing = tmp_path / "urls.txt"
    listing.write_text("".join(f"https://a.example/{i}.bin\n" for i in range(50)))
    specs = list(_specs(_args(tmp_path, listing, recursive=True), _Adding()))
    assert specs == [] and small_blocks == []  # --recursive: each http(s) URL is a page to list
    with pytest.raises(Usage, match="exactly one URL, got 50"):
        list(_specs(_args(tmp_path, listing, output="x.bin"), _Adding()))
    assert small_blocks == []


@pytest.mark.parametrize(
    "block",
    [
        ["https://a.example/1", ""],
        ["https://a.example/1", "https://a.example/2 md5:00"],
        ["https://a.example/1", "#https://a.example/2"],
        ["https://a.example/1", "https://a.example/2#f"],
        ["https://a.example/1", "https://a.example/\x7f"],
        ["https://a.example/1", "https://a.example/é"],
        ["https://a.example/1", "https://other.example/2"],
        ["https://a.example/1", "ftp://a.example/dir/"],
    ],
)
def test_a_block_with_anything_but_plain_urls_of_known_hosts_goes_line_by_line(block):
    check = URLCheck()
    check("https://a.example/0")
    assert check.plain(["https://a.example/1", "https://a.example/2"])
    assert not check.plain(block)
    assert not URLCheck().plain(["https://a.example/1"])  # no host seen yet
