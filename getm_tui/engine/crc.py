"""crc32c, the C function of the crc32c package, loaded without running that package's `__init__`.

The package's `__init__` asks importlib.metadata for its own version, and importing importlib.metadata
(email, zipfile, csv, pathlib) took 20-25 ms of every `getm-tui get` before its first request: the
engine's start is on the critical path of every download. The extension module is all the engine uses.
Anything unexpected in the package's layout falls back to the ordinary import.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

_EXTENSION = "crc32c._crc32c"


def _load_extension() -> Any:
    loaded = sys.modules.get(_EXTENSION)
    if loaded is not None:
        return loaded
    try:
        import importlib.machinery
        import importlib.util
        import os

        package = importlib.util.find_spec("crc32c")  # locates the package without importing it
        for directory in (package.submodule_search_locations or []) if package else []:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = os.path.join(directory, "_crc32c" + suffix)
                if not os.path.exists(path):
                    continue
                spec = importlib.util.spec_from_file_location(_EXTENSION, path)  # an extension's loader
                if spec is None or spec.loader is None:
                    continue
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[_EXTENSION] = module  # a later `import crc32c` reuses it
                return module
    except (ImportError, OSError, ValueError):
        pass
    import crc32c._crc32c as module

    return module


crc32c: Callable[..., int] = _load_extension().crc32c
