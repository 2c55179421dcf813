"""Listing FTP and SFTP trees (the Source interface's `listing`, what `mirror` builds on): relative paths,
sizes and modification times, URLs that fetch each file, MLSD and the LIST fallback, and names from the
server passed on for `listing.local_path` to refuse.
"""

from __future__ import annotations

import calendar
import os

import pytest

from getm_tui.engine import Options, download
from getm_tui.engine.sources import source_for
from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.ftp_listing import mdtm_seconds, parse_unix_line
from getm_tui.engine.sources.listing import UnsafeName, local_path
from tests.helpers.engine_util import read
from tests.helpers.ftpserver import PASSWORD, USER, FTPTestServer
from tests.helpers.sftpserver import PASSWORD as SFTP_PASSWORD
from tests.helpers.sftpserver import SFTPTestServer

pytestmark = pytest.mark.timeout(60)

TREE = {
    "MD5SUMS": b"sums\n",
    "release/a.fa.gz": b"a" * 1000,
    "release/sub/b.txt": b"bb",
    "release/sub/deeper/c.bin": b"c" * 70_000,
    "top.txt": b"top",
}
STAMP = 1_700_000_000  # 2023-11-14 22:13:20 UTC


def _fill(put, root: str) -> None:
    for path, data in TREE.items():
        full = put(f"bank/{path}", data)
        os.utime(full, (STAMP, STAMP))
    os.makedirs(os.path.join(root, "bank", "empty"), exist_ok=True)


def _check(entries, base_url: str) -> None:
    assert [e.path for e in entries] == sorted(TREE)
    for e in entries:
        assert e.size == len(TREE[e.path]) and e.modified is not None and abs(e.modified - STAMP) < 61
        assert e.url == base_url + e.path


@pytest.mark.parametrize("mlsd", [True, False])
def test_ftp_tree(ftp_server: FTPTestServer, tmp_path, mlsd) -> None:
    _fill(ftp_server.put, ftp_server.root)
    ftp_server.record.refuse_mlsd = not mlsd
    url = ftp_server.url("bank/", USER, PASSWORD)
    entries = list(source_for(url).listing(url, Options().http, Access()))
    if mlsd:
        _check(entries, url)
    else:  # LIST says minutes, and a year instead of the time for old files: the date is what is certain
        assert [e.path for e in entries] == sorted(TREE)
        assert all(e.size == len(TREE[e.path]) and e.modified is not None for e in entries)
        assert all(abs(e.modified - STAMP) < 86400 for e in entries if e.modified is not None)
    assert ("LIST" in ftp_server.record.commands) is not mlsd
    # Each listed URL fetches its file, with the login it was listed with.
    deep = next(e for e in entries if e.path.endswith("c.bin"))
    assert read(download(deep.url, str(tmp_path), options=Options(retries=0)).path) == TREE[deep.path]


def test_sftp_tree(sftp_server: SFTPTestServer, tmp_path) -> None:
    _fill(sftp_server.put, sftp_server.root)
    known = tmp_path / "known_hosts"
    known.write_text(sftp_server.known_hosts_line())
    access = Access(sftp_known_hosts=str(known))
    url = sftp_server.url("bank", password=SFTP_PASSWORD)
    entries = list(source_for(url).listing(url, Options().http, access))
    _check(entries, url + "/")
    first = entries[0]
    result = download(first.url, str(tmp_path), options=Options(retries=0, access=access))
    assert read(result.path) == TREE[first.path]


def test_hostile_names_are_passed_on_for_local_path_to_refuse(ftp_server: FTPTestServer, tmp_path) -> None:
    ftp_server.put("bank/ok.txt", b"ok")
    ftp_server.put("bank/back\\slash", b"x")
    ftp_server.put("bank/x.getm-part", b"x")
    url = ftp_server.url("bank/")
    entries = {e.path: e for e in source_for(url).listing(url, Options().http, Access())}
    assert set(entries) == {"ok.txt", "back\\slash", "x.getm-part"}
    assert local_path(str(tmp_path), "ok.txt") == str(tmp_path / "ok.txt")
    for name in ("back\\slash", "x.getm-part"):
        with pytest.raises(UnsafeName):
            local_path(str(tmp_path), name)


def test_unix_list_lines() -> None:
    now = calendar.timegm((2024, 6, 1, 0, 0, 0))
    assert parse_unix_line("-rw-r--r--    1 ftp      ftp          1234 Jan 05  2023 a file.gz", now) == (
        "file",
        "a file.gz",
        1234,
        float(calendar.timegm((2023, 1, 5, 0, 0, 0))),
    )
    # A time instead of a year: this year, or last year when that would be in the future.
    assert parse_unix_line("-rw-r--r-- 1 owner 77 Mar  3 12:30 b", now) == (
        "file",
        "b",
        77,
        float(calendar.timegm((2024, 3, 3, 12, 30, 0))),
    )
    assert parse_unix_line("-rw-r--r-- 1 o g 7 Dec 24 08:00 c", now)[3] == calendar.timegm(
        (2023, 12, 24, 8, 0, 0)
    )
    assert parse_unix_line("drwxr-xr-x   2 o g 4096 Feb 29  2020 dir", now)[:2] == ("dir", "dir")
    assert parse_unix_line("lrwxrwxrwx   1 o g 7 Feb  1  2020 current -> release-5", now)[:2] == (
        "link",
        "current",
    )
    assert parse_unix_line("total 12", now) is None
    assert parse_unix_line("01-05-23  10:00AM       1234 windows.txt", now) is None


def test_mdtm_values() -> None:
    assert mdtm_seconds("20231114221320") == STAMP
    assert mdtm_seconds("20231114221320.250") == STAMP + 0.25
    assert mdtm_seconds("garbage") is None and mdtm_seconds(None) is None
