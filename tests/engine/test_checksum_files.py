"""Sums files (MD5SUMS, SHA256SUMS, md5sum.txt, BSD-style) as the engine reads them."""

from __future__ import annotations

import hashlib

import pytest

from getm_tui.engine import UsageError
from getm_tui.engine.checksum import Expected
from getm_tui.engine.checksum_files import parse_sums, read_sums_file

MD5_A = hashlib.md5(b"a").hexdigest()
SHA256_A = hashlib.sha256(b"a").hexdigest()
SHA1_B = hashlib.sha1(b"b").hexdigest()
SHA512_C = hashlib.sha512(b"c").hexdigest()


def test_coreutils_text_and_binary_lines():
    sums = parse_sums(f"{MD5_A}  a.gz\n{MD5_A} *b.gz\r\n\n# a comment\n", "MD5SUMS")
    assert sums.for_path("a.gz") == [Expected("md5", MD5_A, "MD5SUMS")]
    assert sums.for_path("b.gz") == [Expected("md5", MD5_A, "MD5SUMS")]
    assert sums.for_path("c.gz") == []


def test_the_algorithm_follows_the_length():
    text = f"{MD5_A}  m\n{SHA1_B}  s1\n{SHA256_A}  s256\n{SHA512_C}  s512\n"
    sums = parse_sums(text, "checksums.txt")
    assert [sums.for_path(n)[0].algorithm for n in ("m", "s1", "s256", "s512")] == [
        "md5",
        "sha1",
        "sha256",
        "sha512",
    ]


def test_bsd_and_openssl_lines():
    text = f"MD5 (a.gz) = {MD5_A}\nSHA256(dir/b.gz)= {SHA256_A}\nSHA2-512 (c) = {SHA512_C}\n"
    sums = parse_sums(text, "CHECKSUMS")
    assert sums.for_path("a.gz") == [Expected("md5", MD5_A, "CHECKSUMS")]
    assert sums.for_path("dir/b.gz")[0].algorithm == "sha256"
    assert sums.for_path("c")[0].algorithm == "sha512"


def test_names_the_file_does_not_hold_are_skipped():
    # A sha512-long line in B2SUMS is BLAKE2b, not sha512; a 64-digit line in MD5SUMS is no md5.
    assert parse_sums(f"{SHA512_C}  a\n", "B2SUMS").entries == {}
    assert parse_sums(f"{SHA256_A}  a\n", "MD5SUMS").entries == {}
    # A `sum` line (Ensembl's CHECKSUMS) and garbage are no checksums at all.
    assert parse_sums("12345 67 a.gz\nnot a line\nSHA384 (a) = abcd\n", "CHECKSUMS").entries == {}


def test_escaped_names_and_relative_paths():
    text = f"\\{MD5_A}  we\\\\ird\\nname\n{SHA256_A}  ./sub/dir/x.tar\n"
    sums = parse_sums(text, "sums")
    assert sums.for_path("we\\ird\nname")[0].value == MD5_A
    assert sums.for_path("sub/dir/x.tar")[0].value == SHA256_A


def test_urls_match_the_longest_listed_tail_of_their_path():
    text = f"{MD5_A}  a/x.gz\n{hashlib.md5(b'other').hexdigest()}  b/x.gz\n{SHA256_A}  y%20z.gz\n"
    sums = parse_sums(text, "sums.txt")
    assert sums.for_url("https://h/pub/a/x.gz")[0].value == MD5_A
    assert sums.for_url("https://h/pub/b/x.gz")[0].value == hashlib.md5(b"other").hexdigest()
    assert sums.for_url("https://h/pub/c/x.gz") == []  # x.gz alone is not listed: no guess between a/ and b/
    assert sums.for_url("https://h/y%2520z.gz")[0].value == SHA256_A
    assert sums.for_url("https://h/q.gz?sig=1") == []


def test_one_name_with_several_algorithms():
    sums = parse_sums(f"{MD5_A}  a\nSHA256 (a) = {SHA256_A}\n{MD5_A}  a\n", "sums")
    assert [e.algorithm for e in sums.for_path("a")] == ["md5", "sha256"]


def test_a_file_that_cannot_be_read_or_lists_nothing_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read checksums file"):
        read_sums_file(str(tmp_path / "missing"))
    empty = tmp_path / "MD5SUMS"
    empty.write_text("# nothing\n")
    with pytest.raises(UsageError, match="lists no checksum we can verify"):
        read_sums_file(str(empty))
    empty.write_text(f"{MD5_A}  a\n")
    assert read_sums_file(str(empty)).for_path("a")[0].source == "MD5SUMS"
