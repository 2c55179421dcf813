"""The download engine, usable as a library with no queue and no UI.

    from getm_tui.engine import download, urlopen, iter_content
    result = download(url, "data/", concurrency=8, checksum="md5:...")

Names are loaded on first use, so importing a light submodule (urls, errors) does not pull in requests.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Options": "downloader",
    "Reader": "downloader",
    "Result": "downloader",
    "download": "downloader",
    "iter_content": "downloader",
    "urlopen": "downloader",
    "Cancelled": "errors",
    "DownloadError": "errors",
    "EngineError": "errors",
    "HTTPStatusError": "errors",
    "IntegrityError": "errors",
    "NoSpaceError": "errors",
    "UsageError": "errors",
    "HTTPSettings": "sources.http_session",
    "Progress": "transfer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'getm_tui.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"getm_tui.engine.{module}"), name)
    globals()[name] = value
    return value
