"""Checksums published beside the data: the MD5SUMS, SHA256SUMS, md5sum.txt... of a mirrored directory,
and per-file `NAME.md5`, read before any job is queued so that each file gets its expected checksum.

A sums file names files relative to its own directory (`sub/a.gz` in the root's MD5SUMS is the root's
`sub/a.gz`); a name must be listed exactly to get its checksum, and a file no sums file lists is fetched
without one (not refused). A sums file is small and read here, in one request; one that cannot be read is
said in one line and the mirror goes on without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from getm_tui.config import Settings
from getm_tui.engine.checksum import DIGEST_BYTES, Expected
from getm_tui.engine.checksum_files import SumsFile, parse_sums
from getm_tui.engine.errors import EngineError
from getm_tui.engine.sources.base import Access
from getm_tui.engine.sources.listing import RemoteEntry

SUMS_LIMIT = 16 * 1024 * 1024  # bytes: a bigger "sums file" is something else
_ALGORITHMS = "md5|sha1|sha256|sha512"
_TREE_SUMS = re.compile(rf"^({_ALGORITHMS})(sums?|sums?\.txt)$", re.I)
_ONE_FILE = re.compile(rf"^(.+)\.({_ALGORITHMS})$", re.I)


def is_sums_file(path: str) -> bool:
    name = path.rpartition("/")[2]
    return bool(_TREE_SUMS.match(name) or _ONE_FILE.match(name))


@dataclass
class Published:
    """The sums files read, by the directory (relative, "" for the root) they lie in; and the per-file
    ones by the relative path of the file they are about."""

    by_directory: dict[str, list[SumsFile]] = field(default_factory=dict)
    by_file: dict[str, list[Expected]] = field(default_factory=dict)

    def for_path(self, path: str) -> list[Expected]:
        out = list(self.by_file.get(path, ()))
        for directory, files in self.by_directory.items():
            if directory and not path.startswith(directory + "/"):
                continue
            relative = path[len(directory) + 1 :] if directory else path
            for sums in files:
                out.extend(e for e in sums.entries.get(relative, ()) if e not in out)
        return out


def read_published(
    entries: list[RemoteEntry], settings: Settings, access: Access, say: Callable[[str], None]
) -> Published:
    published = Published()
    for entry in entries:
        try:
            text = _fetch(entry.url, settings, access)
        except EngineError as e:
            say(f"cannot read {entry.path} ({e}): its files are fetched without its checksums")
            continue
        directory, _, name = entry.path.rpartition("/")
        one = _ONE_FILE.match(name)
        if one is not None:
            target = f"{directory}/{one.group(1)}" if directory else one.group(1)
            published.by_file[target] = _per_file(text, name, one.group(1), one.group(2).lower())
        else:
            published.by_directory.setdefault(directory, []).append(parse_sums(text, name))
    return published


def _per_file(text: str, name: str, about: str, algorithm: str) -> list[Expected]:
    """A `NAME.md5`: a coreutils or BSD line about NAME, or the bare hash alone."""
    parsed = parse_sums(text, name)
    found = parsed.entries.get(about) or (
        next(iter(parsed.entries.values())) if len(parsed.entries) == 1 else []
    )
    if found:
        return list(found)
    bare = text.strip().split()
    if (
        len(bare) == 1
        and re.fullmatch(r"[0-9A-Fa-f]+", bare[0])
        and len(bare[0]) == 2 * DIGEST_BYTES[algorithm]
    ):
        return [Expected(algorithm, bare[0].lower(), name)]
    return []


def _fetch(url: str, settings: Settings, access: Access) -> str:
    """The text of a small remote file, read in this process over one connection."""
    from getm_tui.engine import urlopen

    options = settings.engine_options(concurrency=None, access=access, check_archives=False)
    with urlopen(url, options=options) as reader:
        size = reader.size
        if size is not None and size > SUMS_LIMIT:
            raise EngineError(f"larger than {SUMS_LIMIT} bytes")
        data = bytearray()
        while len(data) <= SUMS_LIMIT:
            view = reader.read(1024 * 1024)
            if not len(view):
                break
            data += view
            view.release()
    if len(data) > SUMS_LIMIT:
        raise EngineError(f"larger than {SUMS_LIMIT} bytes")
    return data.decode("utf-8-sig", errors="surrogateescape")
