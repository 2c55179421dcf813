"""crc32c: the C function of the crc32c package, and the crc32c of a whole file from those of its parts;
the CRCs S3 hands out (crc32, crc32c, crc64nvme) in the shape of a hashlib object.

The function is loaded without running that package's `__init__`, which asks importlib.metadata for its
own version: importing importlib.metadata (email, zipfile, csv, pathlib) delayed every `getm-tui get`'s
first request, and the engine's start is on the critical path of every download.
The extension module is all the engine uses. Anything unexpected in the package's layout falls back to the
ordinary import.
"""

from __future__ import annotations

import functools
import sys
import zlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

_EXTENSION = "crc32c._crc32c"


def _load_extension() -> Any:
    loaded = sys.modules.get(_EXTENSION)
    if loaded is not None:
        return loaded
    try:
        import importlib.machinery
        import importlib.util
        import os

        package = importlib.util.find_spec("crc32c")  # locates the package without importing it
        for directory in (package.submodule_search_locations or []) if package else []:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = os.path.join(directory, "_crc32c" + suffix)
                if not os.path.exists(path):
                    continue
                spec = importlib.util.spec_from_file_location(_EXTENSION, path)  # an extension's loader
                if spec is None or spec.loader is None:
                    continue
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[_EXTENSION] = module  # a later `import crc32c` reuses it
                return module
    except (ImportError, OSError, ValueError):
        pass
    import crc32c._crc32c as module

    return module


crc32c: Callable[..., int] = _load_extension().crc32c


_CRC32C_POLY = 0x82F63B78  # Castagnoli, reflected


def _multmodp(a: int, b: int) -> int:
    """a(x) * b(x) modulo the polynomial, both in crc32c's reflected bit order (zlib's multmodp)."""
    m = 1 << 31
    product = 0
    while a:
        if a & m:
            product ^= b
            a ^= m
        m >>= 1
        b = (b >> 1) ^ _CRC32C_POLY if b & 1 else b >> 1
    return product


@functools.cache
def _x_to_2_to(k: int) -> int:
    """x^(2^k) modulo the polynomial: what shifting a crc register over 2^k bits multiplies it by."""
    if k == 0:
        return 1 << 30  # x^1
    half = _x_to_2_to(k - 1)
    return _multmodp(half, half)


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """crc32c(A + B) from crc32c(A), crc32c(B) and len(B), as zlib's crc32_combine does for crc32.

    Lets each part's crc32c be computed independently (out of order, by several workers) and joined at
    the end: crc1 is multiplied by x^(8 * len2) modulo the polynomial, from cached powers x^(2^k), which is
    much cheaper than building zlib's 32x32 matrix operators.
    """
    if len2 < 0:
        raise ValueError("len2 must be >= 0")
    shift = 1 << 31  # x^0
    k = 3  # len2 counts bytes: x^(8 * len2) = product of x^(2^(k+3)) over the set bits k of len2
    while len2:
        if len2 & 1:
            shift = _multmodp(_x_to_2_to(k), shift)
        len2 >>= 1
        k += 1
    return _multmodp(shift, crc1 & 0xFFFFFFFF) ^ (crc2 & 0xFFFFFFFF)


class _Piece(Protocol):
    """A part of a file as far as its crc32c goes (plan.Part is one)."""

    crc: int  # crc32c of its first `done` bytes
    done: int


def whole_crc(parts: Iterable[_Piece]) -> int:
    """The crc32c of consecutive parts joined, from each part's own."""
    crc = 0
    for i, p in enumerate(parts):
        crc = crc32c_combine(crc, p.crc, p.done) if i else p.crc
    return crc


def _crc64nvme(data: Any, value: int) -> int:
    """CRC-64/NVME (S3's CRC64NVME) from awscrt, the library botocore uses for it; imported on first use,
    as only objects that carry this checksum need it."""
    from awscrt.checksums import crc64nvme

    result: int = crc64nvme(data, value)
    return result


# The CRCs a bucket may hand out, by name: (function of (bytes, previous value), digest bytes).
_CRCS: dict[str, tuple[Callable[[Any, int], int], int]] = {
    "crc32": (zlib.crc32, 4),
    "crc32c": (crc32c, 4),
    "crc64nvme": (_crc64nvme, 8),
}
CRC_NAMES = frozenset(_CRCS)


class CrcHash:
    """A CRC in hashlib's shape (update, digest, hexdigest, copy), so the checks that feed hashes in file
    order (checksum.Verifier, an S3 composite's per-part sums) take a CRC like any other hash. The digest
    is the big-endian value, the bytes S3 encodes in base64."""

    def __init__(self, name: str, value: int = 0) -> None:
        self.name = name
        self._func, self.digest_size = _CRCS[name]
        self._value = value

    def update(self, data: Any) -> None:
        self._value = self._func(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self.digest_size, "big")

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> CrcHash:
        return CrcHash(self.name, self._value)
