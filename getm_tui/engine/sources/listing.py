"""What a listing of a remote tree yields, and the one rule for turning its names into local paths.

Every scheme that can list (an s3:// or gs:// prefix, an FTP or SFTP directory, an HTTP index page) yields
`RemoteEntry` values, so `add` of a prefix and `mirror` of a tree decide what to queue and where it goes in
one place. The names come from someone else's server: a key such as `../../.ssh/id_rsa`, `/etc/passwd` or
`a//b` must never become a path outside the chosen directory, so `local_path` refuses it by name instead
of trying to repair it (a repaired name could collide with a real one).
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass

from getm_tui.engine.checksum import Expected
from getm_tui.engine.errors import UsageError
from getm_tui.engine.files import CONTROL_SUFFIX, PART_SUFFIX

# Characters no listed name may hold: C0 and C1 controls (a terminal escape in a name must not reach a
# screen) and the backslash (a path separator to Windows and to anyone who copies the tree there).
_FORBIDDEN = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))} | {"\\"}


@dataclass(frozen=True)
class RemoteEntry:
    """One file of a remote tree.

    `path` is relative to the listed root, `/`-separated, as the remote names it (not yet checked: see
    `local_path`); `url` fetches it. `size`, `modified` (seconds since the epoch) and `etag` are what the
    listing says, for deciding whether a local copy is current; `checksums` are known before the first byte.
    """

    path: str
    url: str
    size: int | None = None
    modified: float | None = None
    etag: str | None = None
    checksums: tuple[Expected, ...] = ()


class UnsafeName(UsageError):
    """A listed name that would land outside the target directory, or that we cannot store faithfully."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"refusing {name!r} from the listing: {why}")
        self.name = name


def local_path(directory: str, relative: str) -> str:
    """`directory` joined with a listed relative path, or UnsafeName when the path could escape it.

    Refused: absolute paths, `.` and `..` segments, empty segments (`a//b`, a trailing `/`), control
    characters and backslashes, and a last segment named like our own temporary files.
    """
    if not relative:
        raise UnsafeName(relative, "empty name")
    if relative.startswith("/"):
        raise UnsafeName(relative, "absolute path")
    if any(c in _FORBIDDEN for c in relative):
        raise UnsafeName(relative, "control character or backslash in the name")
    segments = unicodedata.normalize("NFC", relative).split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise UnsafeName(relative, "empty, '.' or '..' path segment")
    last = segments[-1].lower()
    if last.endswith(PART_SUFFIX) or last.endswith(CONTROL_SUFFIX):
        raise UnsafeName(relative, "named like getm-tui's own temporary files")
    root = os.path.abspath(directory)
    joined = os.path.abspath(os.path.join(root, *segments))
    if os.path.commonpath([root, joined]) != root or joined == root:
        raise UnsafeName(relative, "outside the target directory")
    return joined


def relative_to(root: str, key: str) -> str:
    """A listed key (full, as the store names it) relative to the listed `root` prefix, `/`-separated."""
    if root and not root.endswith("/"):
        root += "/"
    if not key.startswith(root):
        raise UnsafeName(key, f"not under the listed prefix {root!r}")
    return key[len(root) :]  # unmodified: `local_path` refuses what is unsafe, nothing is repaired
