"""The download engine, usable as a library with no queue and no UI.

from getm_tui.engine import download, urlopen, iter_content
result = download(url, "data/", concurrency=8, checksum="md5:...")
"""

from getm_tui.engine.download import Options, Reader, Result, download, iter_content, urlopen
from getm_tui.engine.errors import (
    Cancelled,
    DownloadError,
    EngineError,
    HTTPStatusError,
    IntegrityError,
    NoSpaceError,
    UsageError,
)
from getm_tui.engine.http import HTTPSettings
from getm_tui.engine.transfer import Progress

__all__ = [
    "Cancelled",
    "DownloadError",
    "EngineError",
    "HTTPSettings",
    "HTTPStatusError",
    "IntegrityError",
    "NoSpaceError",
    "Options",
    "Progress",
    "Reader",
    "Result",
    "UsageError",
    "download",
    "iter_content",
    "urlopen",
]
