"""The file:// source: a local file copied to the target, verified, through the same partial file and
commit as a download (target.py), so a copy is never seen half done under its final name either."""

from __future__ import annotations

import os
import time

from getm_tui.engine import checksum
from getm_tui.engine.archive import check_for
from getm_tui.engine.crc import crc32c
from getm_tui.engine.errors import ArchiveDamaged, DownloadError, IntegrityError
from getm_tui.engine.files import free_name, part_path
from getm_tui.engine.result import Result
from getm_tui.engine.sink import FileSink
from getm_tui.engine.target import commit, preallocate, remove, sync_directory
from getm_tui.engine.urls import file_path

COPY_CHUNK = 8 * 1024 * 1024


def copy(
    url: str,
    directory: str,
    name: str | None,
    overwrite: bool,
    expected: list[checksum.Expected],
    check_archives: bool = True,
    sync: bool = True,
) -> Result:
    """Copy the file `url` names to `name` (default its own) in `directory`, checked against `expected`
    (or, with none and `check_archives`, tested as an archive when named like one); with `sync`, the copy
    and its name are on disk before it returns (see Options.sync)."""
    src = file_path(url)
    if not os.path.isfile(src):
        raise DownloadError(f"no such file: {src}")
    started = time.monotonic()
    target = os.path.join(directory, name or os.path.basename(src))
    target = target if overwrite else free_name(target)
    partfile = part_path(target)
    size = os.path.getsize(src)
    verifier = checksum.Verifier(expected, size, check_for(target) if check_archives else None)
    crc = 0
    fd = os.open(partfile, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    sink = FileSink(partfile, fd)
    try:
        preallocate(fd, size, partfile)
        pos = 0
        with open(src, "rb") as f:
            while chunk := f.read(COPY_CHUNK):
                sink.write(pos, memoryview(chunk))
                crc = crc32c(chunk, crc)
                verifier.update(chunk)
                pos += len(chunk)
        outcomes = verifier.finish(crc)
        if checksum.verdict(outcomes) == "mismatch":
            raise IntegrityError(checksum.mismatch_message(os.path.basename(target), outcomes))
        os.ftruncate(fd, pos)
        why = verifier.archive.finish(partfile) if verifier.archive is not None else None
        if why is not None:
            raise ArchiveDamaged(f"archive check failed: {os.path.basename(target)}: {why}")
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove(partfile)
        raise
    os.close(fd)
    final = commit(partfile, target, overwrite)
    if sync:
        sync_directory(directory)
    elapsed = time.monotonic() - started
    tested = verifier.archive.kind if verifier.archive is not None else ""
    return Result(
        final, pos, checksum.verdict(outcomes), outcomes, f"{crc:08x}", elapsed, 0, 1, 0, 0, archive=tested
    )
