"""Checksums published beside the data: MD5SUMS, SHA256SUMS, md5sum.txt and the like.

Data banks publish one file of checksums per directory rather than a header per file. Two layouts exist,
both read here: coreutils' `HASH  name` (`HASH *name` in binary mode, and `\\HASH  name` when the name
holds a backslash or a newline, escaped), and the BSD / `--tag` form `MD5 (name) = HASH`. The algorithm of
a coreutils line is told by the hash's length (every algorithm we verify has its own), unless the file's
name says it is one we cannot verify (B2SUMS, SHA384SUMS...), whose lines are then skipped rather than
mistaken for another algorithm of the same length.

A name may be a path relative to the sums file (`./sub/a.gz`); a URL or a relative path is matched by the
longest tail of its path segments that the file lists, so `mirror` can give each file of a tree its
checksum and `add --checksums-file` each URL. A name the file does not list gets nothing: it is not
refused for that.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from getm_tui.engine.checksum import DIGEST_BYTES, Expected
from getm_tui.engine.errors import UsageError

_BY_LENGTH = {2 * n: algo for algo, n in DIGEST_BYTES.items() if not algo.startswith("crc")}
_GNU = re.compile(r"^(\\?)([0-9A-Fa-f]+)[ \t]+\*?(.+)$")
_BSD = re.compile(r"^([A-Za-z0-9-]+) ?\((.+)\) ?= ?([0-9A-Fa-f]+)$")
_BSD_NAMES = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}
_BSD_NAMES |= {"sha2-256": "sha256", "sha2-512": "sha512"}  # as OpenSSL 3 names them
# What a sums file's name says of its algorithm: one we verify, or one we don't ("other").
_NAMED = re.compile(r"(md5|sha1|sha256|sha512|b2|blake2b?|sha224|sha384|sha3)", re.I)


@dataclass
class SumsFile:
    """The checksums one sums file lists, by the name (a relative path) it gives each file."""

    source: str
    entries: dict[str, list[Expected]] = field(default_factory=dict)

    def for_path(self, path: str) -> list[Expected]:
        """The checksums of the file at `path` (relative, or a URL's path): those of the longest tail of
        its segments that is listed, or [] when none is."""
        segments = [s for s in path.split("/") if s and s != "."]
        for first in range(len(segments)):
            found = self.entries.get("/".join(segments[first:]))
            if found:
                return list(found)
        return []

    def for_url(self, url: str) -> list[Expected]:
        return self.for_path(unquote(urlsplit(url).path))


def parse_sums(text: str, source: str) -> SumsFile:
    """The checksums in `text`, a sums file called `source` (its name hints at the algorithm). Lines that
    are neither layout (comments, blank lines, algorithms we do not verify) are skipped."""
    named = _NAMED.search(os.path.basename(source))
    hint = named.group(1).lower() if named else None
    out = SumsFile(os.path.basename(source))
    for raw in text.splitlines():
        line = raw.strip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parsed = _bsd_line(line) or _gnu_line(line, hint)
        if parsed is None:
            continue
        algo, value, name = parsed
        key = "/".join(s for s in name.split("/") if s and s != ".")
        if not key:
            continue
        expected = Expected(algo, value.lower(), out.source)
        listed = out.entries.setdefault(key, [])
        if expected not in listed:
            listed.append(expected)
    return out


def _bsd_line(line: str) -> tuple[str, str, str] | None:
    m = _BSD.match(line)
    if not m:
        return None
    algo = _BSD_NAMES.get(m.group(1).lower())
    if algo is None or len(m.group(3)) != 2 * DIGEST_BYTES[algo]:
        return None
    return algo, m.group(3), m.group(2)


def _gnu_line(line: str, hint: str | None) -> tuple[str, str, str] | None:
    m = _GNU.match(line)
    if not m:
        return None
    escaped, value, name = m.groups()
    algo = _BY_LENGTH.get(len(value))
    if algo is None or (hint is not None and hint != algo):
        return None
    if escaped:
        name = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), name)
    return algo, value, name


def read_sums_file(path: str) -> SumsFile:
    """The sums file at `path`; UsageError when it cannot be read or lists no checksum we can verify."""
    try:
        with open(path, encoding="utf-8-sig", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"cannot read checksums file {path}: {e.strerror or e}") from None
    sums = parse_sums(text, path)
    if not sums.entries:
        raise UsageError(
            f"{path} lists no checksum we can verify (expected lines like `HASH  name` or "
            "`SHA256 (name) = HASH` with md5, sha1, sha256 or sha512)"
        )
    return sums
