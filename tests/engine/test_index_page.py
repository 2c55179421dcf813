"""Index pages as nginx, Apache (table and <pre> forms), lighttpd and http.server write them: the links
below the page are its children, with the size and time they show; everything else is dropped."""

from __future__ import annotations

import calendar

from getm_tui.engine.sources.index_page import parse_page

PAGE = "http://h/pub/bank/"
WHEN = float(calendar.timegm((2024, 3, 12, 10, 22, 0)))

NGINX = """<html><head><title>Index of /pub/bank/</title></head><body><h1>Index of /pub/bank/</h1><hr><pre>
<a href="../">../</a>
<a href="sub/">sub/</a>                                               12-Mar-2024 10:22                   -
<a href="a%20b.fa.gz">a b.fa.gz</a>                                    12-Mar-2024 10:22        1234567
</pre><hr></body></html>"""

APACHE = """<table><tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th></tr>
<tr><td><img src="/icons/back.gif" alt="[PARENTDIR]"></td><td><a href="/pub/">Parent Directory</a></td></tr>
<tr><td><img src="/icons/folder.gif" alt="[DIR]"></td><td><a href="sub/">sub/</a></td>
<td align="right">2024-03-12 10:22  </td><td align="right">  - </td></tr>
<tr><td><img src="/icons/compressed.gif" alt="[   ]"></td><td><a href="a.fa.gz">a.fa.gz</a></td>
<td align="right">2024-03-12 10:22  </td><td align="right">1.2M</td><td>&nbsp;</td></tr>
<tr><td></td><td><a href="MD5SUMS">MD5SUMS</a></td><td align="right">2024-03-12 10:22  </td>
<td align="right">512 </td></tr></table>"""

LIGHTTPD = """<table><tr class="d"><td class="n"><a href="../">Parent Directory</a>/</td></tr>
<tr class="d"><td class="n"><a href="sub/">sub</a>/</td><td class="m">2024-Mar-12 10:22:00</td>
<td class="s">- &nbsp;</td><td class="t">Directory</td></tr>
<tr><td class="n"><a href="x.txt">x.txt</a></td><td class="m">2024-Mar-12 10:22:00</td>
<td class="s">4.0K</td><td class="t">text/plain</td></tr></table>"""

PYTHON = """<ul><li><a href="d%C3%A9j%C3%A0/">déjà/</a></li><li><a href="%C3%BC%20b.txt">ü b.txt</a></li>
<li><a href="../../etc/passwd">up</a></li><li><a href="/etc/passwd">abs</a></li>
<li><a href="http://other.example/pub/bank/x">x</a></li><li><a href="..%2Fescape">enc</a></li></ul>"""


def facts(html: str) -> list[tuple[str, str, bool, int | None, float | None]]:
    return [(x.name, x.url, x.directory, x.size, x.modified) for x in parse_page(html, PAGE)]


def test_nginx_shows_exact_sizes_and_minutes() -> None:
    assert facts(NGINX) == [
        ("sub", PAGE + "sub/", True, None, WHEN),
        ("a b.fa.gz", PAGE + "a%20b.fa.gz", False, 1234567, WHEN),
    ]


def test_apache_sort_links_and_parent_are_dropped_and_rounded_sizes_are_no_size() -> None:
    assert facts(APACHE) == [
        ("sub", PAGE + "sub/", True, None, WHEN),
        ("a.fa.gz", PAGE + "a.fa.gz", False, None, WHEN),
        ("MD5SUMS", PAGE + "MD5SUMS", False, 512, WHEN),
    ]


def test_lighttpd() -> None:
    assert facts(LIGHTTPD) == [
        ("sub", PAGE + "sub/", True, None, WHEN),
        ("x.txt", PAGE + "x.txt", False, None, WHEN),
    ]


def test_python_http_server_links_only_below_the_page_and_names_decoded() -> None:
    # The encoded `../` is handed on by its name, for local_path to refuse where it is counted.
    assert facts(PYTHON) == [
        ("déjà", PAGE + "d%C3%A9j%C3%A0/", True, None, None),
        ("ü b.txt", PAGE + "%C3%BC%20b.txt", False, None, None),
        ("../escape", PAGE + "..%2Fescape", False, None, None),
    ]
