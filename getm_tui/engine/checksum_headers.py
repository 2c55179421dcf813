"""The checksums a server advertises for a file in the header fields of a GET's response.

Content-MD5, Content-Digest and Repr-Digest (RFC 9530), Digest (RFC 3230), GCS's x-goog-hash and S3's ETag,
each taken only where it describes the bytes as sent (see `from_headers`). Every value becomes an Expected
for checksum.Verifier; malformed ones are logged and skipped, never raised: a bad header must not fail a
download.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping

from getm_tui.engine.checksum import DIGEST_BYTES, HEX, S3_ETAG, Expected, clip

log = logging.getLogger(__name__)

# S3 allows at most 10,000 parts; a larger count means the ETag is not an S3 multipart ETag.
_MAX_S3_PARTS = 10_000

# Algorithm names in RFC 9530 fields (Repr-Digest, Content-Digest) and RFC 3230 Digest, lowercased.
_HTTP_DIGEST_NAMES = {
    "sha-256": "sha256",
    "sha-512": "sha512",
    "md5": "md5",
    "sha": "sha1",
    "crc32c": "crc32c",
}
# KMS-encrypted objects have ETags that are not an MD5 of the data.
_KMS_SSE = ("aws:kms", "aws:kms:dsse")


def from_headers(headers: Mapping[str, str], *, full_body: bool) -> list[Expected]:
    """The checksums a GET response advertises for the file.

    `full_body` says whether this response's body is the whole file (200, or a 206 covering 0..size-1):
    headers that describe only the bytes in this message (Content-MD5, Content-Digest) count only then,
    while those describing the whole object (x-goog-hash, ETag, Repr-Digest, Digest) count always.
    Malformed values are logged and skipped, never raised: a bad header must not fail a download.
    """
    h = _lower_headers(headers)
    found: list[Expected] = []

    if full_body and "content-md5" in h:
        found.extend(_content_md5(h["content-md5"]))

    if "x-goog-hash" in h:
        stored_enc = h.get("x-goog-stored-content-encoding", "").strip().lower()
        served_enc = h.get("content-encoding", "").strip().lower()
        if stored_enc == "gzip" and "gzip" not in served_enc:
            # Decompressive transcoding: GCS hashes describe the stored gzip bytes, not what it sends.
            log.info("ignoring x-goog-hash: GCS is decompressing a gzip-stored object")
        else:
            found.extend(_x_goog_hash(h["x-goog-hash"]))

    if "etag" in h and _is_s3(h):
        found.extend(_s3_etag(h["etag"], h))

    if "repr-digest" in h:
        found.extend(_sf_digest(h["repr-digest"], "Repr-Digest"))
    if full_body and "content-digest" in h:
        found.extend(_sf_digest(h["content-digest"], "Content-Digest"))
    if "digest" in h:
        found.extend(_legacy_digest(h["digest"]))

    unique: list[Expected] = []
    seen: set[tuple[str, str]] = set()
    for e in found:
        if (e.algorithm, e.value) not in seen:
            seen.add((e.algorithm, e.value))
            unique.append(e)
    return unique


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lowercase keys so plain dicts work like CaseInsensitiveDict; repeated names are comma-joined."""
    out: dict[str, str] = {}
    for k, v in headers.items():
        key = k.lower()
        out[key] = f"{out[key]}, {v}" if key in out else str(v)
    return out


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _expect(algo: str, raw: bytes | None, source: str, text: str) -> list[Expected]:
    """One Expected from a decoded digest, or none (with a warning) when it has the wrong length."""
    if raw is None or len(raw) != DIGEST_BYTES[algo]:
        log.warning("ignoring malformed %s %s value %r", source, algo, clip(text))
        return []
    return [Expected(algo, raw.hex(), source)]


def _content_md5(value: str) -> list[Expected]:
    """RFC 1864: base64 of the 16-byte MD5. Some servers send hex instead; that form is unambiguous."""
    value = value.strip()
    if len(value) == 32 and HEX.fullmatch(value):
        return [Expected("md5", value.lower(), "Content-MD5")]
    return _expect("md5", _b64(value), "Content-MD5", value)


def _x_goog_hash(value: str) -> list[Expected]:
    """GCS `crc32c=<b64 big-endian u32>,md5=<b64>`; composite objects have only crc32c."""
    out: list[Expected] = []
    for item in value.split(","):
        name, sep, b64 = item.strip().partition("=")
        algo = name.strip().lower()
        if not sep or algo not in ("crc32c", "md5"):
            continue
        out.extend(_expect(algo, _b64(b64), "x-goog-hash", item))
    return out


def _is_s3(h: Mapping[str, str]) -> bool:
    """Whether the response comes from S3 (or an S3 clone) with an ETag that is an MD5 of the data."""
    if any(k.startswith("x-goog-") for k in h):
        return False  # GCS XML API: its ETag is not an S3-style MD5 for composite objects
    # x-amz-cf-* is CloudFront, which fronts any origin, so it says nothing about the ETag.
    amz = any(k.startswith("x-amz-") and not k.startswith("x-amz-cf-") for k in h)
    if not amz and "amazons3" not in h.get("server", "").lower():
        return False
    if h.get("x-amz-server-side-encryption", "").strip().lower() in _KMS_SSE:
        return False
    # SSE-C: the ETag is not an MD5 either.
    return not any(k.startswith("x-amz-server-side-encryption-customer-") for k in h)


def _s3_etag(value: str, h: Mapping[str, str]) -> list[Expected]:
    etag = value.strip()
    weak = etag[:2].lower() == "w/"
    if weak:
        enc = h.get("content-encoding", "").strip().lower()
        if enc not in ("", "identity"):
            # A proxy compressed the body and weakened the ETag: the bytes are not S3's object.
            log.info("ignoring weak ETag %s on a %s-encoded response", etag, enc)
            return []
        etag = etag[2:]
    if len(etag) >= 2 and etag[0] == etag[-1] == '"':
        etag = etag[1:-1]
    m = S3_ETAG.fullmatch(etag)
    if not m:
        log.debug("S3 ETag %r is not an MD5 shape; not used as a checksum", clip(value))
        return []
    if m.group(2) and int(m.group(2)) > _MAX_S3_PARTS:
        log.debug("S3 ETag %r claims more than %d parts; not used", clip(value), _MAX_S3_PARTS)
        return []
    hex_ = m.group(1).lower()
    return [Expected("s3etag", f"{hex_}-{m.group(2)}" if m.group(2) else hex_, "ETag")]


def _sf_digest(value: str, source: str) -> list[Expected]:
    """RFC 9530 structured-field dictionary: `sha-256=:b64:, sha-512=:b64:` (parameters ignored)."""
    out: list[Expected] = []
    for member in value.split(","):
        key, sep, rest = member.strip().partition("=")
        algo = _HTTP_DIGEST_NAMES.get(key.strip().lower())
        if algo is None:
            continue
        item = rest.split(";", 1)[0].strip()
        if not sep or len(item) < 2 or item[0] != ":" or item[-1] != ":":
            log.warning("ignoring malformed %s member %r", source, clip(member.strip()))
            continue
        out.extend(_expect(algo, _b64(item[1:-1]), source, member.strip()))
    return out


def _legacy_digest(value: str) -> list[Expected]:
    """RFC 3230 `Digest: SHA-256=b64, MD5=b64`; names case-insensitive, "SHA" is sha1."""
    out: list[Expected] = []
    for member in value.split(","):
        key, sep, b64 = member.strip().partition("=")  # base64 padding keeps its own "="
        algo = _HTTP_DIGEST_NAMES.get(key.strip().lower())
        if algo is None:
            continue
        out.extend(_expect(algo, _b64(b64.strip().strip('"')) if sep else None, "Digest", member.strip()))
    return out
