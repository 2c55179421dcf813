"""Trees the mirror tests serve, and what they compare."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

FILES = {
    "a.txt": b"alpha\n",
    "data/one.fa.gz": gzip.compress(b">one\nACGT\n" * 1000, mtime=0),
    "data/deep/two.fa.gz": gzip.compress(b">two\nTTGA\n" * 2000, mtime=0),
    "data/notes with spaces.txt": b"spaces\n",
    "données/été ü.txt": "unicode ü\n".encode(),
}


def make_tree(root: Path, files: dict[str, bytes] = FILES, mtime: float = 1_700_000_000) -> None:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))


def write_md5sums(folder: Path, names: list[str], wrong: tuple[str, ...] = ()) -> None:
    """MD5SUMS in `folder`, for `names` relative to it; those in `wrong` get another file's sum."""
    lines = []
    for name in names:
        digest = hashlib.md5((folder / name).read_bytes()).hexdigest()
        if name in wrong:
            digest = hashlib.md5(b"something else").hexdigest()
        lines.append(f"{digest}  {name}\n")
    (folder / "MD5SUMS").write_text("".join(lines))


def files_under(root: Path) -> dict[str, bytes]:
    """Every regular file under root by relative path (index pages the tests wrote aside)."""
    out = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out
