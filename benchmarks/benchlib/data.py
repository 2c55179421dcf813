"""The files the server serves: random bytes (incompressible, so no tool or layer can cheat by
compressing), with their md5s computed while writing so verification needs no extra pass."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30
WRITE_BLOCK = 8 * MiB


@dataclass(frozen=True)
class DataFile:
    """One served file: its path under the document root, size and md5."""

    rel: str
    size: int
    md5: str

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Sizes:
    """What to generate: full size by default, small for --quick (a smoke run, not a measurement)."""

    big: int
    medium: int
    small_count: int
    small_size: int

    @classmethod
    def full(cls) -> Sizes:
        return cls(big=GiB, medium=256 * MiB, small_count=1000, small_size=64 * 1024)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(big=128 * MiB, medium=64 * MiB, small_count=200, small_size=64 * 1024)


@dataclass(frozen=True)
class Dataset:
    root: Path
    big: DataFile
    medium: DataFile
    small: tuple[DataFile, ...]


def write_random(path: Path, size: int) -> str:
    """Write `size` random bytes to `path`; returns their md5."""
    digest = hashlib.md5()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(WRITE_BLOCK, left))
            digest.update(block)
            f.write(block)
            left -= len(block)
    os.chmod(path, 0o644)  # nginx's workers run as nobody
    return digest.hexdigest()


def make_dataset(root: Path, sizes: Sizes) -> Dataset:
    """The big file (cases a, d, e), the medium one (b, served from /slow/) and the many small ones (c)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "small").mkdir(exist_ok=True)
    for d in (root, root / "small"):
        os.chmod(d, 0o755)
    big = DataFile("big.bin", sizes.big, write_random(root / "big.bin", sizes.big))
    medium = DataFile("medium.bin", sizes.medium, write_random(root / "medium.bin", sizes.medium))
    small = tuple(
        DataFile(
            f"small/f{i:04d}.bin",
            sizes.small_size,
            write_random(root / "small" / f"f{i:04d}.bin", sizes.small_size),
        )
        for i in range(sizes.small_count)
    )
    return Dataset(root=root, big=big, medium=medium, small=small)


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(WRITE_BLOCK):
            digest.update(block)
    return digest.hexdigest()
