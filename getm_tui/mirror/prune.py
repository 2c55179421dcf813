"""`mirror --delete`: the local files that are gone from the source, removed.

Only what the mirror would have taken is a candidate: a file under the destination whose relative path
the selection admits (so files left out by --match, --exclude or --depth are kept, as rsync's filters
protect them), that no listed file maps to, that no unfinished job will write, that is not one of our
own partial files, and whose name is not one the listing held and refused (a refused name proves nothing
about the file: it may be the very one, spelled so it cannot be stored faithfully). The walk never
follows a symbolic link and never leaves the destination; directories it emptied go too.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Callable, Collection

from getm_tui.engine.files import CONTROL_SUFFIX, PART_SUFFIX
from getm_tui.mirror.selection import Selection
from getm_tui.mirror.sums import is_sums_file

log = logging.getLogger(__name__)


def refused_form(name: str) -> str:
    """A refused listed name as the local path it might be mistaken for (NFC, no empty or `.` segments)."""
    parts = [p for p in unicodedata.normalize("NFC", name).split("/") if p not in ("", ".")]
    return "/".join(parts)


def gone(
    destination: str,
    selection: Selection,
    listed: Collection[str],
    refused: Collection[str],
    unfinished: Collection[str],
) -> list[str]:
    """The relative paths of the files `--delete` removes, in walk order."""
    root = os.path.abspath(destination)
    keep_names = {refused_form(n) for n in refused}
    out: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root).replace(os.sep, "/")
            lower = name.lower()
            if lower.endswith(PART_SUFFIX) or lower.endswith(CONTROL_SUFFIX):
                continue
            if path in listed or path in unfinished or relative in keep_names:
                continue
            if not selection.admits(relative, sums=is_sums_file(relative)):
                continue
            out.append(relative)
    return out


def remove(destination: str, relatives: list[str], say: Callable[[str], None]) -> list[str]:
    """Remove the files (and the directories that leaves empty); the relative paths that were removed."""
    root = os.path.abspath(destination)
    removed = []
    for relative in relatives:
        path = os.path.join(root, relative)
        if os.path.commonpath([root, os.path.abspath(path)]) != root:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError as e:
            say(f"cannot remove {relative}: {e.strerror or e}")
            continue
        removed.append(relative)
        folder = os.path.dirname(path)
        while folder != root and os.path.commonpath([root, folder]) == root:
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)
    return removed
