"""The partial file (`NAME.getm-part`): positional writes, from any process holding its descriptor.

Every byte of a download reaches the disk through `write_at`: the coordinator's writes (FileSink) and
those of fetch workers that write what they read (fetch.py), which map its errors each their own way.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

from getm_tui.engine.errors import DownloadError, NoSpaceError

# The errors of a full filesystem (or a full quota): reported as such, never retried.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
READ_BACK = 8 * 1024 * 1024


def write_at(fd: int, data: memoryview, offset: int) -> None:
    """Write all of `data` at `offset` (one pwrite may take less than it is given)."""
    while data:
        n = os.pwrite(fd, data, offset)
        data = data[n:]
        offset += n


class FileSink:
    """The `.getm-part` file: positional writes, and reads back of bytes kept from an earlier run."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    def write(self, offset: int, data: memoryview) -> None:
        try:
            write_at(self.fd, data, offset)
        except OSError as e:
            if e.errno in NO_SPACE:
                raise NoSpaceError(f"no space left on device writing {self.path}") from None
            raise DownloadError(f"cannot write {self.path}: {e.strerror}") from None

    def read(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def read_back(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end) of the file, READ_BACK at a time: what an earlier run kept, to hash again."""
        while start < end:
            n = min(READ_BACK, end - start)
            yield self.read(start, n)
            start += n

    def truncate(self) -> None:
        os.ftruncate(self.fd, 0)
