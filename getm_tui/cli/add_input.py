"""What `add` reads: the URLs of its command line, then an -i list (`URL [ALGO:HEX ...]` a line, `#`
comments), a block of lines at a time so that a list of a million URLs is never held whole.

A list of a million URLs is mostly plain lines (one URL of a few hosts, nothing after it). A block made
only of those is told apart by a few checks of the whole block, and handed on as its URLs: the line by
line parse and the URL check, the most of an add's own work per URL, are skipped for it. Any block with
anything else in it (a checksum, a comment, a blank line, a host not seen yet) goes line by line, which
also words every error.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from getm_tui.cli.verbs import Usage

Entry = tuple[str, list[str], str]  # (url, checksums, where): `where` is '' or ' (line N of FILE)'
Item = Entry | list[str]  # an entry, or a block of plain lines (URLCheck.plain): each a URL as it is

_BLOCK_CHARS = 1 << 20  # characters of an -i list read at a time


def _open(source: str) -> tuple[str, TextIO]:
    """(the name to show, the file) of an input file, or '-' for stdin."""
    if source == "-":
        return "stdin", sys.stdin
    try:
        return source, open(source, encoding="utf-8-sig")  # noqa: SIM115 - closed by _blocks
    except OSError as e:
        raise Usage(f"cannot read {source}: {e.strerror or e}") from None


def _blocks(f: TextIO, name: str) -> Iterator[list[str]]:
    """The file's lines, a block at a time, split where str.splitlines splits them (form feeds and such
    too): the file's lines end in '\\n' only (universal newlines), so splitting a block of whole lines at
    once splits each of them as it would alone."""
    try:
        while lines := f.readlines(_BLOCK_CHARS):
            yield "".join(lines).splitlines()
    except UnicodeDecodeError:
        raise Usage(f"{name} is not UTF-8 text") from None
    except OSError as e:
        raise Usage(f"cannot read {name}: {e.strerror or e}") from None
    finally:
        if f is not sys.stdin:
            f.close()


def _parsed(lines: Iterable[str], before: int, name: str) -> Iterator[Entry]:
    """The entries of lines of the list, the first of them line `before + 1`."""
    for n, line in enumerate(lines, before + 1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) == 1:
            yield tokens[0], [], f" (line {n} of {name})"
            continue
        words = []
        for token in tokens:
            if token.startswith("#"):
                break
            words.append(token)
        # A line is `URL [ALGO:HEX ...]`: a URL holds no blanks, so anything after one is a checksum.
        yield words[0], words[1:], f" (line {n} of {name})"


def read_entries(
    urls: Iterable[str], source: str | None, plain: Callable[[list[str]], bool] | None = None
) -> Iterator[Item]:
    """The command line's URLs, then the list's entries, in order, as the list is read; with `plain`, a
    block of the list it takes comes whole, as one item."""
    for url in urls:
        yield url, [], ""
    if source is None:
        return
    name, f = _open(source)
    before = 0
    for lines in _blocks(f, name):
        if plain is not None and plain(lines):
            yield lines
        else:
            yield from _parsed(lines, before, name)
        before += len(lines)


class URLCheck:
    """`engine.urls.validate`, with what only the scheme and host decide checked once per host.

    A list of a million URLs names a few hosts: whether `scheme://host[:port]/` is a URL validate takes is
    worked out once, and a URL made of such a prefix and a path of printable ASCII (no blank, no
    control character, nothing that moves where urlsplit ends the host) is valid whenever its prefix is.
    Anything else goes through validate itself, which also words every error."""

    _MAX_HOSTS = 10_000
    _MAX_PLAIN = 16  # http(s) prefixes a block of plain lines is matched against

    def __init__(self) -> None:
        from getm_tui.engine.errors import UsageError
        from getm_tui.engine.urls import validate

        self.validate = validate
        self.refused = UsageError
        self.hosts: set[str] = set()
        self.http_prefixes: tuple[str, ...] = ()

    def __call__(self, url: str) -> str:
        host, slash, path = url.partition("://")[2].partition("/")
        if slash and url.isascii() and url.isprintable() and " " not in url:
            prefix = url[: len(url) - len(path)]
            if "?" not in host and "#" not in host:
                if prefix in self.hosts:
                    return url
                try:
                    self.validate(prefix)
                except self.refused:
                    pass  # the URL itself is checked below, and its error told
                else:
                    self._known(prefix)
                    return url
        return self.validate(url)

    def _known(self, prefix: str) -> None:
        if len(self.hosts) >= self._MAX_HOSTS:
            self.hosts.clear()
        self.hosts.add(prefix)
        if prefix.startswith(("http://", "https://")) and len(self.http_prefixes) < self._MAX_PLAIN:
            self.http_prefixes += (prefix,)

    def plain(self, lines: list[str]) -> bool:
        """Whether every line is a URL this check takes as it is, of an http(s) host it has seen, and
        nothing else: none empty, all printable ASCII with no blank (so one token a line) and no '#' (no
        comment; a URL with a fragment goes line by line), each starting with a known prefix (which is
        then its own: a prefix ends at the first '/' after its host). Such a URL is not a prefix to list."""
        text = "".join(lines)
        return (
            bool(self.http_prefixes)
            and text.isascii()
            and text.isprintable()
            and " " not in text
            and "#" not in text
            and all(lines)
            and all(map(str.startswith, lines, itertools.repeat(self.http_prefixes)))
        )
