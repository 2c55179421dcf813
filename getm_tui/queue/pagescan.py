"""Rows read straight from the pages of a damaged SQLite file, for when SQLite itself cannot reach them.

Why: SQLite reads a table through its b-tree, so one bad interior page, a destroyed header or a damaged
schema hides every row below it, although the leaf pages that hold the rows are intact. Like the sqlite3
shell's `.recover`, this reads every page as it would be seen now (the newest committed WAL frame of a page
wins over the database file), skips the pages the freelist says are free, and decodes the cells of table
and index leaf pages into records. It trusts nothing: a page or cell that does not parse is skipped, and
callers check what the values mean.

Only the standard library; the format is https://www.sqlite.org/fileformat2.html.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAGIC = b"SQLite format 3\x00"
WAL_MAGIC = (0x377F0682, 0x377F0683)
TABLE_LEAF, INDEX_LEAF = 0x0D, 0x0A
_PAGE_TYPES = (0x02, 0x05, 0x0A, 0x0D)
_PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)
_INT_SIZES = (0, 1, 2, 3, 4, 6, 8)


class _Bad(Exception):
    """A page, cell or record that does not parse."""


@dataclass(frozen=True)
class Cell:
    """One decoded cell: `rowid` for table rows (None for index entries) and the record's values."""

    page: int
    kind: int  # TABLE_LEAF or INDEX_LEAF
    rowid: int | None
    values: tuple[Any, ...]


@dataclass
class Layout:
    page_size: int
    usable: int
    header_ok: bool
    free: set[int]


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        if pos + i >= end:
            raise _Bad("varint past the end")
        b = buf[pos + i]
        if i == 8:
            return (value << 8) | b, pos + 9
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, pos + i + 1
    raise _Bad("unreachable")  # pragma: no cover


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_record(payload: bytes) -> tuple[Any, ...]:
    """A record's values; _Bad unless the header and the body add up exactly."""
    size = len(payload)
    header, pos = _varint(payload, 0, size)
    if header < 1 or header > size:
        raise _Bad("record header size")
    types = []
    while pos < header:
        t, pos = _varint(payload, pos, header)
        types.append(t)
    if pos != header:
        raise _Bad("record header overrun")
    body = header
    values: list[Any] = []
    for t in types:
        if t in (10, 11):
            raise _Bad("reserved serial type")
        if t <= 6:
            n = _INT_SIZES[t]
            value: Any = int.from_bytes(payload[body : body + n], "big", signed=True) if n else None
        elif t == 7:
            n = 8
            value = struct.unpack(">d", payload[body : body + 8])[0] if body + 8 <= size else None
        elif t in (8, 9):
            n, value = 0, t - 8
        elif t % 2 == 0:
            n = (t - 12) // 2
            value = bytes(payload[body : body + n])
        else:
            n = (t - 13) // 2
            try:
                value = payload[body : body + n].decode("utf-8")
            except UnicodeDecodeError:
                raise _Bad("text is not UTF-8") from None
        if body + n > size:
            raise _Bad("record body overrun")
        body += n
        values.append(value)
    if body != size:
        raise _Bad("record body size")
    return tuple(values)


class PageFile:
    """The pages of a database file and its WAL as a reader would see them now, without SQLite."""

    def __init__(self, db: bytes, wal: bytes = b"") -> None:
        self.db = db
        self.layout = self._layout(db)
        self.newest: dict[int, bytes] = self._wal_pages(wal, self.layout.page_size)
        n_db = len(db) // self.layout.page_size
        self.count = max([n_db, *self.newest])
        if self.layout.header_ok or 1 in self.newest:
            self.layout.free = self._freelist()

    @staticmethod
    def _layout(db: bytes) -> Layout:
        if len(db) >= 100 and db[:16] == MAGIC:
            raw = struct.unpack(">H", db[16:18])[0]
            size = 65536 if raw == 1 else raw
            if size in _PAGE_SIZES and db[20] < 64:
                return Layout(size, size - db[20], True, set())
        # The header is gone: take the page size under which most pages look like b-tree pages.
        best, best_score = 4096, -1
        for size in _PAGE_SIZES:
            pages = range(1, len(db) // size)  # page 1 holds the header: skip it
            score = sum(1 for n in pages if _looks_like_btree(db, n * size, size))
            if score > best_score:
                best, best_score = size, score
        return Layout(best, best, False, set())

    @staticmethod
    def _wal_pages(wal: bytes, page_size: int) -> dict[int, bytes]:
        """The newest committed version of each page in the WAL (frames after the last commit are not)."""
        if len(wal) < 32 or struct.unpack(">I", wal[:4])[0] not in WAL_MAGIC:
            return {}
        size = struct.unpack(">I", wal[8:12])[0]
        if size != page_size:
            return {}
        salts = wal[16:24]
        pending: dict[int, bytes] = {}
        committed: dict[int, bytes] = {}
        pos = 32
        while pos + 24 + size <= len(wal):
            frame = wal[pos : pos + 24]
            if frame[8:16] != salts:
                break  # frames left from before the last checkpoint restarted the WAL
            number, commit = struct.unpack(">II", frame[:8])
            if number >= 1:
                pending[number] = wal[pos + 24 : pos + 24 + size]
            if commit:
                committed.update(pending)
                pending.clear()
            pos += 24 + size
        return committed

    def page(self, number: int) -> bytes | None:
        if number in self.newest:
            return self.newest[number]
        size = self.layout.page_size
        start = (number - 1) * size
        if number < 1 or start + size > len(self.db):
            return None
        return self.db[start : start + size]

    def _freelist(self) -> set[int]:
        first = self.page(1)
        if first is None:
            return set()
        trunk = struct.unpack(">I", first[32:36])[0]
        free: set[int] = set()
        while 1 <= trunk <= self.count and trunk not in free:
            free.add(trunk)
            page = self.page(trunk)
            if page is None:
                break
            n = struct.unpack(">I", page[4:8])[0]
            if 8 + 4 * n > len(page):
                break
            free.update(struct.unpack(f">{n}I", page[8 : 8 + 4 * n]))
            trunk = struct.unpack(">I", page[:4])[0]
        return free

    def cells(self) -> Iterator[Cell]:
        """Every cell of every table or index leaf page that is not free, decoded; bad ones skipped."""
        for number in range(1, self.count + 1):
            if number in self.layout.free:
                continue
            page = self.page(number)
            if page is None:
                continue
            yield from self._leaf(number, page)

    def _leaf(self, number: int, page: bytes) -> Iterator[Cell]:
        usable = self.layout.usable
        base = 100 if number == 1 else 0
        kind = page[base]
        if kind not in (TABLE_LEAF, INDEX_LEAF):
            return
        ncells = struct.unpack(">H", page[base + 3 : base + 5])[0]
        pointers = base + 8
        if pointers + 2 * ncells > usable:
            return
        for i in range(ncells):
            offset = struct.unpack(">H", page[pointers + 2 * i : pointers + 2 * i + 2])[0]
            if offset < pointers + 2 * ncells or offset >= usable:
                continue
            try:
                yield self._cell(number, page, kind, offset)
            except _Bad:
                continue

    def _cell(self, number: int, page: bytes, kind: int, pos: int) -> Cell:
        usable = self.layout.usable
        length, pos = _varint(page, pos, usable)
        rowid = None
        if kind == TABLE_LEAF:
            raw, pos = _varint(page, pos, usable)
            rowid = _signed(raw)
            most = usable - 35
        else:
            most = (usable - 12) * 64 // 255 - 23
        least = (usable - 12) * 32 // 255 - 23
        if length <= most:
            local = length
        else:
            k = least + (length - least) % (usable - 4)
            local = k if k <= most else least
        if pos + local > usable:
            raise _Bad("cell past the page")
        payload = page[pos : pos + local]
        if local < length:
            if pos + local + 4 > usable:
                raise _Bad("overflow pointer past the page")
            first = struct.unpack(">I", page[pos + local : pos + local + 4])[0]
            payload += self._overflow(first, length - local)
        return Cell(number, kind, rowid, decode_record(payload))

    def _overflow(self, number: int, need: int) -> bytes:
        chunks = []
        seen: set[int] = set()
        room = self.layout.usable - 4
        while need > 0:
            if number in seen or not 1 <= number <= self.count:
                raise _Bad("broken overflow chain")
            seen.add(number)
            page = self.page(number)
            if page is None:
                raise _Bad("overflow page missing")
            take = min(need, room)
            chunks.append(page[4 : 4 + take])
            need -= take
            number = struct.unpack(">I", page[:4])[0]
        return b"".join(chunks)


def _looks_like_btree(db: bytes, start: int, size: int) -> bool:
    if start + size > len(db) or db[start] not in _PAGE_TYPES:
        return False
    ncells, content = struct.unpack(">HH", db[start + 3 : start + 7])
    header = 12 if db[start] in (0x02, 0x05) else 8
    content = 65536 if content == 0 else content
    return bool(header + 2 * ncells <= content <= size)
