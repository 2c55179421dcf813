"""Errors the engine raises, split by what a caller should do about them.

A front end maps them to exit codes: `UsageError` is the user's input (exit 2); everything else under
`DownloadError` is a failed download (exit 1). `Retryable` marks faults worth another attempt.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of everything the engine raises on purpose; its message is one line fit for a user."""


class UsageError(EngineError):
    """The caller's input is wrong (malformed URL, unknown checksum algorithm, missing directory)."""


class DownloadError(EngineError):
    """The download could not be completed."""


class HTTPStatusError(DownloadError):
    """The server answered with a status that ends the attempt."""

    def __init__(self, status: int, reason: str, url: str) -> None:
        super().__init__(f"HTTP {status} {reason} from {url}")
        self.status = status


class SignatureExpired(HTTPStatusError):
    """A signed URL's time is up (the store said so, or a 403 came after the deadline the URL states): the
    job keeps its parts and waits for a new URL of the same object."""

    def __init__(self, status: int, reason: str, url: str, message: str) -> None:
        super().__init__(status, reason, url)
        self.args = (message,)


class Retryable(DownloadError):
    """A transient fault: reset, short read, timeout, 408/429/5xx. Carries the server's Retry-After."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryableStatus(Retryable):
    def __init__(self, status: int, reason: str, url: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status} {reason} from {url}", retry_after)
        self.status = status


class RemoteChanged(DownloadError):
    """The remote file changed under us (validator differs, or If-Range answered 200): start over."""


class IntegrityError(DownloadError):
    """The downloaded bytes do not match a known checksum; nothing reaches the final name."""


class ArchiveDamaged(IntegrityError):
    """No checksum was known and the file, named as an archive, does not decompress: damaged or cut short."""


class NoSpaceError(DownloadError):
    """The target filesystem is full."""


class Cancelled(EngineError):
    """The download was stopped on request (Ctrl-C, pause, shutdown); its progress is kept."""
