"""`add`'s bucket prefixes: each listed and queued object by object (queue/tree.py, shared with the app),
with one line per prefix on stderr saying what came of it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from getm_tui.cli.common import CONTROLS, EXIT_FAILED, EXIT_OK, settings_from, warn
from getm_tui.queue.tree import Filters, TreeCounts, is_current, is_prefix, queue_prefix, queue_tree

if TYPE_CHECKING:
    from getm_tui.engine.sources.listing import UnsafeName
    from getm_tui.queue.interface import JobQueue

__all__ = ["Filters", "TreeCounts", "add_prefixes", "is_current", "is_prefix", "queue_tree"]


def add_prefixes(
    args: argparse.Namespace, q: JobQueue, prefixes: Sequence[str], directory: str, shared: dict[str, Any]
) -> int:
    """List each prefix and queue its objects; one line per prefix on stderr with what came of it."""
    from getm_tui.engine.errors import EngineError
    from getm_tui.engine.urls import redact

    settings = settings_from(args)
    access = settings.access(anonymous=bool(getattr(args, "anonymous", False)))
    filters = Filters(tuple(args.include or ()), tuple(args.exclude or ()))

    def added(ids: list[int]) -> None:
        sys.stdout.write("".join(f"{i}\n" for i in ids))

    def refused(e: UnsafeName) -> None:
        warn(str(e).translate(CONTROLS))

    code = EXIT_OK
    for url in prefixes:
        counts = TreeCounts()
        try:
            counts = queue_prefix(q, url, settings.http(), access, directory, filters, shared, refused, added)
        except EngineError as e:
            warn(f"{e} (listing {redact(url)} stopped; what was listed before it is queued)")
            code = EXIT_FAILED
        sys.stdout.flush()
        warn(f"{redact(url)}: {counts.describe()}")
    return code
