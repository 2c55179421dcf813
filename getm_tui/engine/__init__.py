"""The download engine, usable as a library with no queue and no UI.

    from getm_tui.engine import download, urlopen, iter_content
    result = download(url, "data/", concurrency=8, checksum="md5:...")

Names are loaded on first use, so importing a light submodule (urls, errors) does not pull in requests.
Type checkers see them through the imports under TYPE_CHECKING, which never run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from getm_tui.engine.api import Options as Options
    from getm_tui.engine.api import Result as Result
    from getm_tui.engine.api import download as download
    from getm_tui.engine.api import iter_content as iter_content
    from getm_tui.engine.api import urlopen as urlopen
    from getm_tui.engine.errors import ArchiveDamaged as ArchiveDamaged
    from getm_tui.engine.errors import Cancelled as Cancelled
    from getm_tui.engine.errors import DownloadError as DownloadError
    from getm_tui.engine.errors import EngineError as EngineError
    from getm_tui.engine.errors import HTTPStatusError as HTTPStatusError
    from getm_tui.engine.errors import IntegrityError as IntegrityError
    from getm_tui.engine.errors import NoSpaceError as NoSpaceError
    from getm_tui.engine.errors import UsageError as UsageError
    from getm_tui.engine.progress import Progress as Progress
    from getm_tui.engine.reader import Reader as Reader
    from getm_tui.engine.sources.http_session import HTTPSettings as HTTPSettings

# Each public name, and the submodule it is loaded from.
_EXPORTS = {
    "Options": "api",
    "Result": "api",
    "download": "api",
    "iter_content": "api",
    "urlopen": "api",
    "ArchiveDamaged": "errors",
    "Cancelled": "errors",
    "DownloadError": "errors",
    "EngineError": "errors",
    "HTTPStatusError": "errors",
    "IntegrityError": "errors",
    "NoSpaceError": "errors",
    "UsageError": "errors",
    "Progress": "progress",
    "Reader": "reader",
    "HTTPSettings": "sources.http_session",
}

__all__ = [
    "ArchiveDamaged",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'getm_tui.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"getm_tui.engine.{module}"), name)
    globals()[name] = value
    return value
