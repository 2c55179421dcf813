"""The target file: its name, its claim, its space, and its commit.

Bytes go to `NAME.getm-part` beside the target, and only a complete, verified file takes the name
(ARCHITECTURE.md, invariant 1). The name is claimed in the resume record before the partial file exists,
so a download killed at any moment finds its own partial file again; the space is reserved before the
first byte is fetched; and the commit never clobbers a file unless asked to.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from typing import Any

from getm_tui.engine import control
from getm_tui.engine.crc import crc32c
from getm_tui.engine.errors import NoSpaceError, UsageError
from getm_tui.engine.files import control_path, free_name, part_path
from getm_tui.engine.result import Result
from getm_tui.engine.sink import NO_SPACE, READ_BACK

log = logging.getLogger(__name__)


def split_target(path: str | None) -> tuple[str, str | None]:
    """(directory, file name or None) for a target that may be a directory, and check the directory exists."""
    if path is None:
        return os.getcwd(), None
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        return path, None
    if path.endswith(os.sep):
        raise UsageError(f"directory does not exist: {path}")
    directory, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"directory does not exist: {directory}")
    return directory, name


def choose_target(
    directory: str, name: str, url: str, overwrite: bool, store: control.ResumeStore | None
) -> tuple[str, int | None]:
    """The target path, with its `.getm-part` reserved (O_EXCL) so no other download can take the name,
    and the partial file open for reading and writing when it was created here (None when it was there:
    our own partial download, to resume). The caller closes it.

    Our own partial download of the same URL is resumed in place; an existing file is never clobbered
    without `overwrite`; two downloads racing for one name get different names. The name is claimed in
    the resume record before the `.getm-part` is created, so a kill at any moment (before the first
    progress is saved, say) leaves a partial file the next attempt recognises as its own.

    A store may refuse a claim (control.NameTaken: a download it runs holds the name): the next free
    name is tried. A name the store reserved (control.ResumeStore) owns no partial file yet.
    """
    candidate = os.path.join(directory, name)
    stored = store.load() if store is not None else None
    reserved = False
    if control.is_reserved(stored):
        # A reservation of this name was made with nothing at it or its partial name
        # (control.reservation): the claim goes ahead without a look, and the O_EXCL create still keeps
        # any partial file that came since (a file that came at the name meets the commit, which never
        # clobbers).
        reserved = control.claimed_name(stored, url) == name
        stored = None
    elif store is not None:
        # A store of this one download (the queue's job row) may name the file it went to: `NAME (1)`
        # when NAME was taken.
        claimed = control.claimed_name(stored, url)
        if claimed is not None and os.path.exists(part_path(os.path.join(directory, claimed))):
            return os.path.join(directory, claimed), None
    partial = not reserved and os.path.exists(part_path(candidate))
    if partial:
        rec = stored if store is not None else control.ControlFile(control_path(candidate)).load()
        if control.owns(rec, url, candidate):
            return candidate, None  # our own partial download: resume it
    wanted = candidate
    # With no partial file there, only the name itself is left for free_name to look at (a dangling
    # link at the partial name fails the O_EXCL create below, which then moves on to a free name).
    if partial or (not overwrite and not reserved and os.path.lexists(candidate)):
        candidate = free_name(wanted)
    refused: set[str] = set()
    while True:
        try:
            claim(url, candidate, store)
            return candidate, os.open(part_path(candidate), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except control.NameTaken:
            refused.add(candidate)
        except FileExistsError:
            pass
        # The next free name after the one asked for (`NAME (2)`), never after the one just lost (which
        # would give `NAME (1) (1)`): the lost one is on disk now or refused, so it is skipped.
        candidate = free_name(wanted, refused)


def claim(url: str, target: str, store: control.ResumeStore | None) -> None:
    """Record that `target`'s partial file is ours, before it exists (see choose_target)."""
    if store is not None:
        store.save(control.claim(url, target))
        return
    own = control.ControlFile(control_path(target))
    try:
        own.save(control.claim(url, target))
    finally:
        own.close()


def finished_before(
    rec: dict[str, Any] | None, url: str, directory: str, fixed_name: str | None
) -> Result | None:
    """The result of an earlier attempt that finished (verified, renamed) and was killed before its
    caller recorded that, as its record tells; None when there is still something to do.

    A record saved before the file's bytes were synced (a caller that syncs many files at once, or no
    sync at all) does not prove they reached the disk: a power cut may have left the right size with
    other bytes. Such a file counts only if its crc32c, read back, is the one recorded.
    """
    name = control.claimed_name(rec, url)
    info = rec.get("finished") if rec else None
    if name is None or not isinstance(info, dict) or fixed_name not in (None, name):
        return None
    target = os.path.join(directory, name)
    partfile = part_path(target)
    try:
        outcomes = [control.outcome_from(row) for row in info["outcomes"]]
        # A caller that moves the file to its name itself (Options.commit "caller") may have been killed
        # after the finished record and before the move: the file is then still at its partial name.
        at = partfile if not os.path.lexists(target) and os.path.exists(partfile) else target
        size = os.stat(at).st_size
        if size != info["size"]:
            return None
        if at == target and os.path.exists(partfile):
            if not os.path.samefile(partfile, target):
                return None
            os.unlink(partfile)  # killed between the two steps of commit: link, then unlink
        if not info.get("synced", True) and f"{file_crc(at):08x}" != info["crc32c"]:
            log.warning("%s is not what an earlier attempt finished: fetching it again", name)
            return None
        if at == partfile:
            os.link(partfile, target)  # never over a file that came meanwhile (FileExistsError: fetch)
            os.unlink(partfile)
        log.info("%s was finished by an earlier attempt", name)
        return Result(target, size, info["verdict"], outcomes, info["crc32c"], 0.0, size, 0, 0, 0)
    except (OSError, KeyError, TypeError, ValueError):
        return None


class Flusher:
    """Writes the file back to disk while it downloads, so the fsync at commit has little left to do.

    Without it a fast download leaves all of the file dirty in the page cache (the kernel starts writing
    only at 10% of memory) and the final fsync waits for the disk to take the whole file.
    """

    # What is dirty when the download ends is what the final fsync waits for, so the interval bounds it
    # (the README's benchmark notes have the measurements behind this value).
    EVERY = 0.1

    def __init__(self, fd: int, enabled: bool = True) -> None:
        self.fd = fd
        self.enabled = enabled  # off when nothing will sync the file (sync = false)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.EVERY):
            try:
                os.fdatasync(self.fd)
            except OSError:
                return  # a full disk or a closed file: the commit's own fsync reports what matters

    def __enter__(self) -> Flusher:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()


def preallocate(fd: int, size: int, path: str, empty: bool = False) -> None:
    """Reserve the space up front: a full disk is reported before any byte is fetched. `empty`: the
    caller has just created or truncated the file (it holds no blocks: nothing to look at)."""
    before_size, before_bytes = (0, 0) if empty else _extent(fd)
    try:
        if before_bytes < size:
            os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in NO_SPACE:
            free = shutil.disk_usage(os.path.dirname(path) or ".").free
            os.ftruncate(fd, before_size)  # not 0: a resumed file holds bytes its record counts on
            raise NoSpaceError(
                f"no space left on device for {os.path.basename(path)[: -len('.getm-part')]}: "
                f"needs {size} bytes, {free} free"
            ) from None
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def _extent(fd: int) -> tuple[int, int]:
    """The file's size and the bytes it has on disk."""
    st = os.fstat(fd)
    return st.st_size, st.st_blocks * 512


def commit(partfile: str, target: str, overwrite: bool) -> str:
    """Move the finished file to its name; without overwrite never clobber (a free name is taken)."""
    if overwrite:
        os.replace(partfile, target)
        return target
    while True:
        try:
            os.link(partfile, target)
        except FileExistsError:
            target = free_name(target)
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if os.path.exists(target):
                target = free_name(target)
            os.rename(partfile, target)
            return target
        os.unlink(partfile)
        return target


def sync_directory(path: str) -> None:
    """Make the names in directory `path` durable: a rename is on disk only once its directory is synced."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_crc(path: str) -> int:
    """The crc32c of the file at `path`, read back."""
    crc = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(READ_BACK):
            crc = crc32c(chunk, crc)
    return crc


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
