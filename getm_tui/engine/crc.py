"""crc32c: the C function of the crc32c package, and the crc32c of a whole file from those of its parts.

The function is loaded without running that package's `__init__`, which asks importlib.metadata for its
own version: importing importlib.metadata (email, zipfile, csv, pathlib) delayed every `getm-tui get`'s
first request, and the engine's start is on the critical path of every download.
The extension module is all the engine uses. Anything unexpected in the package's layout falls back to the
ordinary import.
"""

from __future__ import annotations

import functools
import sys
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
