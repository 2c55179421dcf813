"""Archives of every kind the engine tests, made here from random bytes, and the ways to damage them.

Random bytes do not compress, so an archive is about as big as its payload: a few MiB is several 1 MiB
parts, fetched over several connections.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import random
import tarfile
import zipfile

import zstandard

MiB = 1024 * 1024

KINDS = ("gz", "bz2", "xz", "zst", "zip", "tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst")
DAMAGES = ("truncated", "corrupted")
# What the engine calls each kind in Result.archive and in its messages.
KIND_NAMES = {
    "gz": "gzip",
    "bz2": "bzip2",
    "xz": "xz",
    "zst": "zstd",
    "zip": "zip",
    "tar": "tar",
    "tar.gz": "tar+gzip",
    "tar.bz2": "tar+bzip2",
    "tar.xz": "tar+xz",
    "tar.zst": "tar+zstd",
}

_COMPRESS = {
    "gz": lambda d: gzip.compress(d, compresslevel=1, mtime=0),
    "bz2": lambda d: bz2.compress(d, compresslevel=1),
    "xz": lambda d: lzma.compress(d, preset=0),
    "zst": lambda d: zstandard.ZstdCompressor(level=1, write_checksum=True).compress(d),
}


def payload(size: int = 3 * MiB, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def tar_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _members(data: bytes) -> dict[str, bytes]:
    third = len(data) // 3
    return {"a.bin": data[:third], "dir/b.bin": data[third : 2 * third], "c.bin": data[2 * third :]}


@functools.cache
def archive(kind: str, size: int = 3 * MiB) -> bytes:
    """An intact archive of `kind` (a key of KINDS) holding `size` random bytes."""
    data = payload(size)
    if kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, member in _members(data).items():
                zf.writestr(name, member)
        return buf.getvalue()
    if kind == "tar":
        return tar_of(_members(data))
    if kind.startswith("tar."):
        return _COMPRESS[kind[4:]](tar_of(_members(data)))
    return _COMPRESS[kind](data)


def damaged(kind: str, how: str, size: int = 3 * MiB) -> bytes:
    """The archive cut to two thirds ("truncated") or with one byte flipped ("corrupted") where its own
    checks see it: in compressed data, a zip member's data, or (a plain tar checks only its headers) the
    second member's header."""
    good = archive(kind, size)
    if how == "truncated":
        return good[: len(good) * 2 // 3]
    at = len(good) // 2
    if kind == "tar":
        at = _header_offset(good, 2) + 100
    if kind == "zip":
        at = len(good) // 3  # inside the compressed data of the members, away from the directory
    bad = bytearray(good)
    bad[at] ^= 0xFF
    return bytes(bad)


def _header_offset(tar: bytes, member: int) -> int:
    """Where the header of member number `member` (1-based) starts in a plain tar."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return t.getmembers()[member - 1].offset


def cases() -> list[tuple[str, str]]:
    """(kind, "good" | "truncated" | "corrupted") for every kind."""
    return [(kind, how) for kind in KINDS for how in ("good", *DAMAGES)]


def data_of(kind: str, how: str, size: int = 3 * MiB) -> bytes:
    return archive(kind, size) if how == "good" else damaged(kind, how, size)
