"""Where bytes land: target names, temporary names, and the rule that nothing is clobbered.

Data goes to `NAME.getm-part` beside the target and is renamed only when complete and verified, so the
final name never holds a partial or unverified file (ARCHITECTURE.md, invariant 1). Names that come from a
server (Content-Disposition) are reduced to one safe path component so nothing lands outside the target
directory (invariant 6).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Container

PART_SUFFIX = ".getm-part"
CONTROL_SUFFIX = ".getm-resume"
MAX_NAME_BYTES = 200
DEFAULT_NAME = "download"

_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f/\\:*?"<>|]')  # C0 and C1 controls (\x9b is CSI)


def sanitize_name(name: str | None) -> str:
    """One safe file name component from an untrusted name, or "" when nothing usable is left."""
    if not name:
        return ""
    name = unicodedata.normalize("NFC", name)
    # Keep only the last component of any path the server sent (both separators).
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name).strip().strip(".")
    if name in ("", ".", ".."):
        return ""
    # A server must not name a file like our own temporary files: `rm` and resume would take it for the
    # partial download of another job (and cleanup would delete it).
    for suffix in (PART_SUFFIX, CONTROL_SUFFIX):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)] + "_" + name[1 - len(suffix) :]
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext.encode()) <= 16 else ""
        keep = MAX_NAME_BYTES - len(ext.encode()) - (1 if ext else 0)
        stem = (stem if ext else name).encode("utf-8")[:keep].decode("utf-8", "ignore")
        name = f"{stem}.{ext}" if ext else stem
    return name


def free_name(path: str, refused: Container[str] = ()) -> str:
    """`path` if nothing (not even a partial download) is there, else `name (1).ext`, `name (2).ext` ...;
    never one of `refused` (names another download holds, though nothing is on disk yet)."""
    if not _taken(path) and path not in refused:
        return path
    head, tail = os.path.split(path)
    stem, ext = _split_ext(tail)
    n = 1
    while True:
        candidate = os.path.join(head, f"{stem} ({n}){ext}")
        if not _taken(candidate) and candidate not in refused:
            return candidate
        n += 1


def _taken(path: str) -> bool:
    return os.path.lexists(path) or os.path.lexists(path + PART_SUFFIX)


def _split_ext(name: str) -> tuple[str, str]:
    for double in (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"):
        if name.lower().endswith(double) and len(name) > len(double):
            return name[: -len(double)], name[-len(double) :]
    stem, ext = os.path.splitext(name)
    return stem, ext


def part_path(target: str) -> str:
    return target + PART_SUFFIX


def control_path(target: str) -> str:
    return target + CONTROL_SUFFIX
