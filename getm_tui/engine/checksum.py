"""Integrity checks for downloads, computed while the bytes arrive.

The engine fetches a file in parts over several connections, so bytes reach us out of order across parts
but in order within a part. Re-reading a multi-gigabyte file after the download would double the I/O, so
everything here is built to verify in the same pass:

* crc32c is the only checksum that can be computed out of order: each part's crc32c is combined with
  `crc.crc32c_combine`, and the caller hands the whole-file value to `Verifier.finish`.
* md5 / sha1 / sha256 / sha512 and S3 ETags need the bytes in file order; the caller feeds them to
  `Verifier.update` as the contiguous prefix of the file grows.

With no checksum at all, a file named like an archive is tested by decompressing it (archive.py), fed the
same way: `Verifier.archive`.

Expected values come from the user (`parse_user_checksum`) or from what the server advertises
(`checksum_headers.from_headers`). Every expected value refers to the bytes as transmitted (before any
content decoding), which is what the engine saves.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from getm_tui.engine.errors import UsageError

if TYPE_CHECKING:  # not imported at run time: `add` checks checksums without loading the archive tests
    from getm_tui.engine.archive import ArchiveCheck

log = logging.getLogger(__name__)

ALGORITHMS = ("md5", "sha1", "sha256", "sha512", "crc32c", "crc32", "crc64nvme")

MiB = 1024 * 1024

# Digest length in bytes of each algorithm; the hex form is twice as long.
DIGEST_BYTES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64, "crc32c": 4, "crc32": 4, "crc64nvme": 8}

# Part sizes that S3 uploaders commonly use, most likely first: aws cli / boto3 (8 MiB, doubled by
# s3transfer while a file would need more than 10,000 parts, hence 16/32/64...), the S3 minimum and rclone
# (5 MiB), s3cmd (15 MiB), and round sizes people configure.
COMMON_PART_SIZES = (
    8 * MiB,
    5 * MiB,
    16 * MiB,
    15 * MiB,
    32 * MiB,
    64 * MiB,
    100 * MiB,
    128 * MiB,
    256 * MiB,
    512 * MiB,
    1024 * MiB,
)
# Each candidate layout costs a full md5 pass over the data.
MAX_LAYOUTS = 6

HEX = re.compile(r"[0-9a-fA-F]+")
# An S3 ETag: the md5 of the object, or "md5 of the parts' md5s" and the part count.
S3_ETAG = re.compile(r"([0-9a-fA-F]{32})(?:-([1-9][0-9]*))?")
# An S3 composite checksum of a multipart upload: the checksum of the parts' checksums, and the part count.
COMPOSITE = re.compile(r"([0-9a-f]+)-([1-9][0-9]*)")

# What the checks of a download came to: all passed, one failed, or none was known.
Verdict = Literal["verified", "mismatch", "unverified"]


class ChecksumSpecError(ValueError):
    """A checksum given by the user is malformed; the message is one line fit to show them."""


@dataclass(frozen=True)
class Expected:
    """A checksum the download must match.

    `algorithm` is one of ALGORITHMS or "s3etag"; `value` is lowercase hex, or "hex-N" for an S3 multipart
    ETag or composite checksum (the algorithm's checksum over the N parts' checksums); `source` names where
    it came from ("user" or the response header) so a mismatch can be explained.
    """

    algorithm: str
    value: str
    source: str
    # A multipart ETag's or composite checksum's part size when the bucket told it: the one layout to
    # test, not a guess.
    part_size: int | None = None


@dataclass(frozen=True)
class Outcome:
    """The result of checking one expectation."""

    expected: Expected
    computed: str
    ok: bool
    detail: str = ""


def parse_user_checksum(text: str, source: str = "user") -> Expected:
    """Parse a user's `ALGO:HEX` (e.g. `sha256:ab12...`); the algorithm is case-insensitive. `source` names
    where the user took it from when that was a published sums file, for the line a mismatch gives."""
    spec = text.strip()
    algo, sep, value = spec.partition(":")
    algo = algo.strip().lower()
    value = value.strip()
    if not sep or not algo:
        raise ChecksumSpecError(
            f"checksum {clip(spec)!r} is not ALGORITHM:HEX (e.g. sha256:9f86d0...; "
            f"algorithms: {', '.join(ALGORITHMS)})"
        )
    if algo not in ALGORITHMS:
        raise ChecksumSpecError(f"unknown checksum algorithm {clip(algo)!r} (known: {', '.join(ALGORITHMS)})")
    if not value:
        raise ChecksumSpecError(f"{algo} checksum has no value after the colon")
    if not HEX.fullmatch(value):
        raise ChecksumSpecError(f"{algo} checksum {clip(value)!r} is not hexadecimal (0-9, a-f)")
    want = 2 * DIGEST_BYTES[algo]
    if len(value) != want:
        raise ChecksumSpecError(f"{algo} checksum must be {want} hex digits, got {len(value)}")
    return Expected(algo, value.lower(), source)


ChecksumArg = str | Expected | Sequence[str | Expected] | None


def expected_from(arg: ChecksumArg, source: str = "user") -> list[Expected]:
    """User checksums from `ALGO:HEX` strings (raising UsageError) or ready Expected values.

    Here rather than beside download(): `getm-tui add` checks checksums without loading requests."""
    if arg is None:
        return []
    items = [arg] if isinstance(arg, (str, Expected)) else list(arg)
    out = []
    for item in items:
        if isinstance(item, Expected):
            out.append(item)
        else:
            try:
                out.append(parse_user_checksum(item, source))
            except ChecksumSpecError as e:
                raise UsageError(str(e)) from None
    return out


def clip(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters, for quoting a malformed value in one line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- S3 multipart ETag layouts -------------------------------------------------------------------------


def s3_part_size_candidates(size: int | None, parts: int) -> list[int]:
    """Part sizes P, most likely first, that could have produced an S3 ETag `hex-parts` for `size` bytes.

    All parts but the last are P bytes, so ceil(size / P) == parts. At most MAX_LAYOUTS are returned
    because each costs an md5 pass. Without a size only the common sizes can be guessed; with one, the
    smallest feasible whole MiB and the even split ceil(size / parts) are also tried. Empty when no
    part size can give that many parts.
    """
    if parts < 1:
        return []
    if size is None:
        return list(COMMON_PART_SIZES[:MAX_LAYOUTS])
    if parts == 1:
        return [max(size, 1)]
    low = -(-size // parts)  # ceil: the smallest P with ceil(size/P) <= parts
    high = (size - 1) // (parts - 1)  # the largest P with ceil(size/P) >= parts
    if low < 1 or low > high:
        return []
    common = [p for p in COMMON_PART_SIZES if low <= p <= high]
    extras: list[int] = []
    whole_mib = -(-low // MiB) * MiB
    if whole_mib <= high and whole_mib not in common:
        extras.append(whole_mib)
    if low not in common and low not in extras:
        extras.append(low)
    return common[: max(0, MAX_LAYOUTS - len(extras))] + extras


def _new_hash(name: str) -> Any:
    """Every hash object comes from here (one place to count or swap them in tests)."""
    if name.startswith("crc"):
        from getm_tui.engine.crc import CrcHash

        return CrcHash(name)
    return hashlib.new(name)


class _Layout:
    """Hashes the data as S3 parts of `part_size` bytes: `algorithm` per part, then over the part digests
    (md5 for a multipart ETag, the checksum's own algorithm for a composite checksum)."""

    def __init__(self, algorithm: str, part_size: int) -> None:
        self.algorithm = algorithm
        self.part_size = part_size
        self._part = _new_hash(algorithm)
        self._filled = 0
        self._of_digests = _new_hash(algorithm)
        self._done = 0  # completed parts

    def update(self, mv: memoryview) -> None:
        offset, n = 0, len(mv)
        while offset < n:
            take = min(self.part_size - self._filled, n - offset)
            self._part.update(mv[offset : offset + take])  # a slice of a memoryview copies nothing
            self._filled += take
            offset += take
            if self._filled == self.part_size:
                self._of_digests.update(self._part.digest())
                self._done += 1
                self._part = _new_hash(self.algorithm)
                self._filled = 0

    def result(self) -> tuple[str, int]:
        """(`hex`, parts) for the data so far; does not disturb the running state."""
        of_digests = self._of_digests.copy()
        parts = self._done
        if self._filled or not parts:
            of_digests.update(self._part.digest())
            parts += 1
        return of_digests.hexdigest(), parts


def _size_text(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n} bytes"


class Verifier:
    """Checks a download against every expected checksum as it arrives.

    Feed the file's bytes in order to `update` (needed when `ordered`), then call `finish`. Hash objects
    are shared per algorithm, so a user md5, a Content-MD5 and a single-part S3 ETag cost one md5 pass;
    each candidate S3 multipart layout costs one more. S3 ETags and composite checksums that no part
    layout could produce for `size` (more parts than bytes) are dropped here, as they are not checksums
    we can test.

    `archive` tests the file as an archive, only when no checksum is left to verify: a checksum says more.
    """

    def __init__(
        self, expected: Sequence[Expected], size: int | None, archive: ArchiveCheck | None = None
    ) -> None:
        self._size = size
        kept: list[Expected] = []
        # Checksums of parts: (the parts' algorithm, the part count or None, the part sizes to try).
        self._layered: dict[Expected, tuple[str, int | None, list[int]]] = {}
        for e in expected:
            if e.algorithm == "s3etag":
                m = S3_ETAG.fullmatch(e.value)
                if not m:
                    raise ValueError(f"s3etag value {e.value!r} is not HEX or HEX-N")
                base, parts = "md5", int(m.group(2)) if m.group(2) else None
                several = bool(parts and parts > 1)
            elif e.algorithm in ALGORITHMS:
                m = COMPOSITE.fullmatch(e.value)
                if m is None:
                    kept.append(e)
                    continue
                base, parts, several = e.algorithm, int(m.group(2)), True
            else:
                raise ValueError(f"unknown checksum algorithm {e.algorithm!r}")
            cands = s3_part_size_candidates(size, parts) if several and parts else []
            if several and e.part_size:
                cands = [e.part_size]
            if several and not cands:
                log.info(
                    "ignoring %s %s: no part size gives %s parts for %s bytes", e.source, e.value, parts, size
                )
                continue
            self._layered[e] = (base, parts, cands)
            kept.append(e)
        self.expected: tuple[Expected, ...] = tuple(kept)
        self.archive = None if kept else archive
        self.ordered: bool = any(not self._plain_crc32c(e) for e in kept) or bool(
            self.archive is not None and self.archive.streaming
        )
        self.reset()

    def _plain_crc32c(self, e: Expected) -> bool:
        """A crc32c of the whole file: the one checksum computed out of order, from the parts' own."""
        return e.algorithm == "crc32c" and e not in self._layered

    def reset(self) -> None:
        """Forget everything fed so far (the remote file changed and the download starts over)."""
        names: set[str] = set()
        layouts: set[tuple[str, int]] = set()
        for e in self.expected:
            if e in self._layered:
                base, parts, cands = self._layered[e]
                if e.algorithm == "s3etag" and (parts is None or parts == 1):
                    names.add("md5")  # plain MD5, or md5(md5(data)) for one part
                layouts.update((base, p) for p in cands)
            elif e.algorithm != "crc32c":
                names.add(e.algorithm)
        self._hashers: dict[str, Any] = {name: _new_hash(name) for name in sorted(names)}
        self._layouts: dict[tuple[str, int], _Layout] = {key: _Layout(*key) for key in sorted(layouts)}
        self._crc: int | None = 0 if any(self._plain_crc32c(e) for e in self.expected) else None
        self._fed = 0
        if self.archive is not None:
            self.archive.reset()

    @property
    def fed(self) -> int:
        """Bytes given to `update` since construction or the last `reset`."""
        return self._fed

    def update(self, data: memoryview | bytes | bytearray) -> None:
        """Hash the next bytes of the file, in file order. No copies are made of `data`."""
        mv = data if isinstance(data, memoryview) else memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        if not mv.nbytes:
            return
        for h in self._hashers.values():
            h.update(mv)
        for layout in self._layouts.values():
            layout.update(mv)
        if self._crc is not None:
            # Imported when first used: `add` parses checksums without computing any.
            from getm_tui.engine.crc import crc32c

            self._crc = crc32c(mv, self._crc)
        if self.archive is not None and self.archive.streaming:
            self.archive.update(mv)
        self._fed += mv.nbytes

    def finish(self, crc32c: int | None = None) -> list[Outcome]:
        """One Outcome per expectation, in order. Does not disturb the running state.

        `crc32c` is the whole file's crc32c from the caller (computed out of order); without it the value
        comes from the bytes fed to `update`. Raises ValueError if a crc32c is expected and neither exists.
        """
        short = ""
        if self._size is not None and self._fed != self._size:
            short = f"hashed {self._fed} of {self._size} bytes"
        crc_hex = ""
        if any(self._plain_crc32c(e) for e in self.expected):
            crc_hex = f"{self._final_crc(crc32c):08x}"
        out: list[Outcome] = []
        for e in self.expected:
            want = e.value.lower()
            if e in self._layered:
                out.append(self._layered_outcome(e, want, short))
            elif e.algorithm == "crc32c":
                out.append(Outcome(e, crc_hex, crc_hex == want))
            else:
                computed = self._hashers[e.algorithm].hexdigest()
                ok = computed == want
                out.append(Outcome(e, computed, ok, "" if ok else short))
        return out

    def _final_crc(self, given: int | None) -> int:
        if given is not None:
            given &= 0xFFFFFFFF
            whole = self._fed and (self._size is None or self._fed == self._size)
            if whole and self._crc is not None and self._crc != given:
                log.warning(
                    "crc32c from the parts (%08x) differs from the fed bytes (%08x)", given, self._crc
                )
            return given
        if self._crc is not None and (self._fed or self._size == 0):
            return self._crc
        raise ValueError("a crc32c is expected but finish() got no crc32c and no data was fed")

    def _layered_outcome(self, e: Expected, want: str, short: str) -> Outcome:
        base, parts, cands = self._layered[e]
        if e.algorithm == "s3etag" and (parts is None or parts == 1):
            md5 = self._hashers["md5"]
            if parts is None:
                computed, detail = md5.hexdigest(), "S3 single-part ETag (MD5 of the object)"
            else:
                computed, detail = hashlib.md5(md5.digest()).hexdigest() + "-1", "S3 multipart layout, 1 part"
            ok = computed == want
            return Outcome(e, computed, ok, detail if ok or not short else f"{detail}; {short}")
        results = [(p, *self._layouts[base, p].result()) for p in cands]
        for p, hex_, n in results:
            if f"{hex_}-{n}" == want:
                return Outcome(e, want, True, f"S3 multipart layout {_size_text(p)} x {n} parts")
        # Report the most likely layout: the first that at least has the right number of parts.
        p, hex_, n = next((r for r in results if r[2] == parts), results[0])
        tried = ", ".join(_size_text(p) for p, _, _ in results)
        detail = f"no S3 part layout matched (tried {tried})"
        if short:
            detail += f"; {short}"
        return Outcome(e, f"{hex_}-{n}", False, detail)


def verifier_for(
    user: Sequence[Expected],
    advertised: Sequence[Expected],
    size: int | None,
    archive: ArchiveCheck | None = None,
) -> Verifier:
    """A Verifier of the user's checksums, then of those the server advertised that the user did not give
    (or of `archive` when there are none)."""
    return Verifier([*user, *(e for e in advertised if e not in user)], size, archive)


def verdict(outcomes: Sequence[Outcome]) -> Verdict:
    """Summarise outcomes: "verified" if all passed, "mismatch" if any failed, "unverified" if none."""
    if not outcomes:
        return "unverified"
    return "verified" if all(o.ok for o in outcomes) else "mismatch"


def mismatch_message(name: str, outcomes: Sequence[Outcome]) -> str:
    """One line naming each failed checksum of file `name` with its expected and computed values."""
    lines = "; ".join(
        f"{o.expected.algorithm} from {o.expected.source}: "
        f"expected {o.expected.value}, computed {o.computed}" + (f" ({o.detail})" if o.detail else "")
        for o in outcomes
        if not o.ok
    )
    return f"checksum mismatch for {name}: {lines}"
