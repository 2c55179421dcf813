"""Archive tests: a download with no known checksum, named like an archive, is tested by decompressing it.

A checksum says the bytes are the ones published; with none, a truncated or damaged archive would be
committed as good and found out only when someone opens it. Compressed formats carry their own checks
(gzip's CRC-32 and length, bzip2's block CRCs, xz's check, zstd's content checksum) and tar headers carry
checksums, so decompressing the file tells most damage apart from a good copy.

Streaming formats (.gz, .bz2, .xz, .zst, .tar and .tar.*) are tested as the bytes arrive, fed in file order
exactly as the ordered hashes are (`checksum.Verifier.update`), so there is no second pass over the file;
the decompressed bytes are counted and dropped. A .zip needs its central directory, at the end of the file,
so it is tested once the file is complete, before the commit.

Decompressing is bounded in memory: output is taken at most OUT_CHUNK at a time (zstd, whose API has no
such limit, is fed small slices of input), so a small file that expands enormously costs time, not memory.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

OUT_CHUNK = 1024 * 1024
# zstd can expand a block of a few bytes to 128 KiB, and its decompressobj returns all it can at once.
ZSTD_SLICE = 8 * 1024
TAR_BLOCK = 512
# Link, symlink, device, directory and FIFO entries have no data, whatever their size field says.
TAR_NO_DATA = frozenset(b"123456")
PAX_LIMIT = 1024 * 1024  # a pax header bigger than this is not one we read for the size


class ArchiveProblem(Exception):
    """The archive is damaged or truncated; the message says how, in one line."""


class ArchiveCheck:
    """Tests one file as an archive of `kind`. Feed its bytes in order to `update` when `streaming`,
    then `finish` with the complete file's path: it returns None when the archive is intact, else why not.
    A damaged stream is noted at once and the rest of the bytes are ignored."""

    streaming = True

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.reset()

    def reset(self) -> None:
        """Start over (the remote file changed and the download starts again)."""
        self.problem: str | None = None
        self.fed = 0

    def update(self, data: memoryview) -> None:
        pass

    def finish(self, path: str) -> str | None:
        return self.problem

    def _fail(self, message: str) -> None:
        if self.problem is None:
            self.problem = f"{self.kind}: {message}"


class _StreamCheck(ArchiveCheck):
    """A compressed stream (or none) and, inside it, a tar archive (or not)."""

    def __init__(self, kind: str, codec: Callable[[], _Member] | None, tar: bool) -> None:
        self._codec = codec
        self._tar = tar
        super().__init__(kind)

    def reset(self) -> None:
        super().reset()
        self._member: _Member | None = None
        self._members = 0
        self._walker = _TarWalker() if self._tar else None

    def update(self, data: memoryview) -> None:
        if self.problem is not None or not len(data):
            return
        try:
            if self._codec is None:
                self._out(data)
            else:
                self._decode(data)
        except ArchiveProblem as e:
            self._fail(f"{e} (in the first {self.fed + len(data)} bytes)")
        except Exception as e:
            # What decoders raise differs (zlib.error, OSError from bz2, LZMAError, ZstdError), and the
            # decoders are imported only for their own files; any of them means the data is damaged.
            log.debug("%s check: %r", self.kind, e)
            self._fail(f"damaged data in the first {self.fed + len(data)} bytes ({e})")
        self.fed += len(data)

    def _decode(self, data: memoryview) -> None:
        assert self._codec is not None
        rest: memoryview | bytes = data
        while len(rest):
            if self._member is None:
                # Between streams: padding of zero bytes is allowed (xz, and gzip as tape writes it).
                raw = bytes(rest)
                stripped = raw.lstrip(b"\0")
                if not stripped:
                    return
                rest = stripped
                self._member = self._codec()
            member = self._member
            for out in member.feed(rest):
                self._out(memoryview(out))
            if not member.eof:
                return
            self._members += 1
            self._member = None
            rest = member.unused

    def _out(self, data: memoryview) -> None:
        if self._walker is not None:
            self._walker.feed(data)

    def finish(self, path: str) -> str | None:
        if self.problem is not None:
            return self.problem
        if self._codec is not None:
            if self._member is not None:
                self._fail(f"the file ends inside the compressed data after {self.fed} bytes (truncated)")
            elif not self._members:
                self._fail("no compressed data")
        if self.problem is None and self._walker is not None:
            try:
                self._walker.finish()
            except ArchiveProblem as e:
                self._fail(str(e))
        return self.problem


class _ZipCheck(ArchiveCheck):
    """A zip is read back once complete: every member decompressed and its CRC-32 checked."""

    streaming = False

    def finish(self, path: str) -> str | None:
        import lzma
        import zipfile

        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    try:
                        with zf.open(info) as member:
                            while member.read(OUT_CHUNK):
                                pass
                    except (NotImplementedError, RuntimeError):
                        continue  # encrypted, or a method Python cannot read: untested, not damaged
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as e:
            self._fail(str(e) or type(e).__name__)
        return self.problem


# -- compressed streams ------------------------------------------------------------------------------


class _Member:
    """One gzip member, bzip2 or xz stream, or zstd frame: `feed` yields its output in bounded pieces;
    once `eof`, `unused` holds the input that came after it."""

    eof = False
    unused: bytes = b""

    def feed(self, data: memoryview | bytes) -> Iterator[bytes]:
        raise NotImplementedError


class _Zlib(_Member):
    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=31)  # gzip framing: header, CRC-32 and length checked

    def feed(self, data: memoryview | bytes) -> Iterator[bytes]:
        buf: memoryview | bytes = data
        while not self._d.eof:
            out = self._d.decompress(buf, OUT_CHUNK)
            yield out
            buf = self._d.unconsumed_tail
            if not buf and len(out) < OUT_CHUNK:
                break  # all input taken and no output held back
        if self._d.eof:
            self.eof = True
            self.unused = self._d.unused_data


class _Buffered(_Member):
    """bz2 and lzma decompressors: they keep unused input themselves and say when they need more."""

    def __init__(self, d: Any) -> None:
        self._d = d

    def feed(self, data: memoryview | bytes) -> Iterator[bytes]:
        yield self._d.decompress(data, OUT_CHUNK)
        while not self._d.eof and not self._d.needs_input:
            yield self._d.decompress(b"", OUT_CHUNK)
        if self._d.eof:
            self.eof = True
            self.unused = self._d.unused_data


class _Zstd(_Member):
    def __init__(self) -> None:
        import zstandard  # only for .zst files: `get` of anything else does not load it

        self._d = zstandard.ZstdDecompressor().decompressobj(write_size=OUT_CHUNK)

    def feed(self, data: memoryview | bytes) -> Iterator[bytes]:
        view = memoryview(data)
        for at in range(0, len(view), ZSTD_SLICE):
            piece = view[at : at + ZSTD_SLICE]
            yield self._d.decompress(piece)
            if self._d.eof:
                self.eof = True
                self.unused = bytes(self._d.unused_data) + bytes(view[at + len(piece) :])
                return


def _bz2() -> _Member:
    import bz2

    return _Buffered(bz2.BZ2Decompressor())


def _xz() -> _Member:
    import lzma

    return _Buffered(lzma.LZMADecompressor(format=lzma.FORMAT_XZ))


# -- tar ------------------------------------------------------------------------------------------------


class _TarWalker:
    """Walks a tar stream header by header: each header's checksum is checked, member data is skipped by
    its size, and the archive must end with its end-of-archive block (a tar cut at a member's boundary
    is otherwise indistinguishable from a whole one)."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._skip = 0  # bytes of member data and padding still to pass
        self._pax: bytearray | None = None  # a pax header's data being collected
        self._pax_left = 0
        self._next_size: int | None = None  # a size a pax header gave the next member
        self._members = 0
        self._ended = False

    def feed(self, data: memoryview) -> None:
        at, n = 0, len(data)
        while at < n and not self._ended:
            if self._skip:
                take = min(self._skip, n - at)
                if self._pax is not None and self._pax_left:
                    keep = min(take, self._pax_left)
                    self._pax += data[at : at + keep]
                    self._pax_left -= keep
                    if not self._pax_left:
                        self._next_size = _pax_size(bytes(self._pax), self._next_size)
                        self._pax = None
                self._skip -= take
                at += take
                continue
            take = min(TAR_BLOCK - len(self._head), n - at)
            self._head += data[at : at + take]
            at += take
            if len(self._head) == TAR_BLOCK:
                block, self._head = bytes(self._head), bytearray()
                self._header(block)
        # Anything after the end-of-archive block is padding to the record size: not read.

    def _header(self, block: bytes) -> None:
        if not any(block):
            self._ended = True
            return
        if not _header_checksum_ok(block):
            raise ArchiveProblem(f"the tar header of member {self._members + 1} is damaged (checksum)")
        size = _tar_number(block[124:136])
        if size is None:
            raise ArchiveProblem(f"the tar header of member {self._members + 1} has an unreadable size")
        kind = block[156]
        if kind in (ord("x"), ord("g")):
            if kind == ord("x") and size <= PAX_LIMIT:
                self._pax, self._pax_left = bytearray(), size
                if not size:
                    self._pax = None
        else:
            if self._next_size is not None:
                size, self._next_size = self._next_size, None
            if kind in TAR_NO_DATA:
                size = 0
            if kind not in (ord("L"), ord("K")):
                self._members += 1
        self._skip = -(-size // TAR_BLOCK) * TAR_BLOCK

    def finish(self) -> None:
        if self._skip or self._head:
            raise ArchiveProblem("the tar archive ends inside a member (truncated)")
        if not self._ended:
            raise ArchiveProblem("the tar archive has no end-of-archive block (truncated)")


def _header_checksum_ok(block: bytes) -> bool:
    stored = _tar_number(block[148:156])
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    signed = unsigned - 2 * sum(b for b in (*block[:148], *block[156:]) if b >= 0x80)
    return stored is not None and stored in (unsigned, signed)


def _tar_number(field: bytes) -> int | None:
    """A numeric header field: octal text, or base-256 (GNU) when the first byte's high bit is set."""
    if field and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _pax_size(records: bytes, current: int | None) -> int | None:
    """The `size` a pax extended header gives the next member (sizes past 8 GiB live there)."""
    for line in records.split(b"\n"):
        _length, _sp, pair = line.partition(b" ")
        key, eq, value = pair.partition(b"=")
        if eq and key == b"size" and value.isdigit():
            return int(value)
    return current


# -- which test for which name ---------------------------------------------------------------------------

_CODECS: dict[str, Callable[[], _Member]] = {"gzip": _Zlib, "bzip2": _bz2, "xz": _xz, "zstd": _Zstd}
# Longest suffix first: `.tar.gz` before `.gz`.
_SUFFIXES = (
    (".tar.gz", "gzip", True),
    (".tar.bz2", "bzip2", True),
    (".tar.xz", "xz", True),
    (".tar.zst", "zstd", True),
    (".tgz", "gzip", True),
    (".tbz2", "bzip2", True),
    (".tbz", "bzip2", True),
    (".txz", "xz", True),
    (".tzst", "zstd", True),
    (".gz", "gzip", False),
    (".bz2", "bzip2", False),
    (".xz", "xz", False),
    (".zst", "zstd", False),
    (".tar", "", True),
)


def check_for(name: str) -> ArchiveCheck | None:
    """The test for a file called `name`, by its suffix; None when it is not an archive we can test."""
    lower = os.path.basename(name).lower()
    if lower.endswith(".zip"):
        return _ZipCheck("zip")
    for suffix, codec, tar in _SUFFIXES:
        if lower.endswith(suffix):
            kind = "+".join(k for k in ("tar" if tar else "", codec) if k)
            return _StreamCheck(kind, _CODECS[codec] if codec else None, tar)
    return None
