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
    """What to generate and how many jobs to queue: full size by default, small for --quick (a smoke run,
    not a measurement). `many_count` small files are case (g)'s (written only when it runs);
    `queue_jobs` is case (h)'s queue length (URLs only, nothing is served for them)."""

    big: int
    medium: int
    small_count: int
    small_size: int
    many_count: int = 10_000
    queue_jobs: int = 1_000_000

    @classmethod
    def full(cls) -> Sizes:
        return cls(big=GiB, medium=256 * MiB, small_count=1000, small_size=64 * 1024)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            big=128 * MiB,
            medium=64 * MiB,
            small_count=200,
            small_size=64 * 1024,
            many_count=500,
            queue_jobs=20_000,
        )


@dataclass(frozen=True)
class Dataset:
    root: Path
    big: DataFile
    medium: DataFile
    small: tuple[DataFile, ...]
    many: tuple[DataFile, ...] = ()


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


def write_small_files(root: Path, folder: str, count: int, size: int) -> tuple[DataFile, ...]:
    (root / folder).mkdir(exist_ok=True)
    os.chmod(root / folder, 0o755)
    return tuple(
        DataFile(f"{folder}/f{i:05d}.bin", size, write_random(root / folder / f"f{i:05d}.bin", size))
        for i in range(count)
    )


def make_dataset(root: Path, sizes: Sizes, with_many: bool = False) -> Dataset:
    """The big file (cases a, d, e), the medium one (b, served from /slow/), the small ones (c) and, when
    asked, the many small ones (g)."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    big = DataFile("big.bin", sizes.big, write_random(root / "big.bin", sizes.big))
    medium = DataFile("medium.bin", sizes.medium, write_random(root / "medium.bin", sizes.medium))
    small = write_small_files(root, "small", sizes.small_count, sizes.small_size)
    many = write_small_files(root, "many", sizes.many_count, sizes.small_size) if with_many else ()
    return Dataset(root=root, big=big, medium=medium, small=small, many=many)


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(WRITE_BLOCK):
            digest.update(block)
    return digest.hexdigest()
