"""Adding what the add dialog asked for, in a worker thread: the plain URLs' jobs at once, then each bucket
prefix listed and its objects queued batch by batch (queue/tree.py, as `getm-tui add` does), the
supervisor woken after each batch so the first objects download while the listing goes on. A listing of
millions of keys takes minutes: it never runs on the event loop, and what came of each prefix (queued,
skipped, refused names, a failed listing) is said in a notification.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from getm_tui.queue.errors import QueueError
from getm_tui.queue.interface import open_queue
from getm_tui.runner import protocol as P

if TYPE_CHECKING:
    from getm_tui.app.app import GetmApp
    from getm_tui.app.screens.add import AddRequest
    from getm_tui.engine.sources.listing import UnsafeName
    from getm_tui.queue.interface import JobQueue

# C0/C1 controls become "?" in what is shown: a listed key is someone else's text.
_CONTROLS = {c: "?" for c in (*range(0x20), *range(0x7F, 0xA0))}


def add_request(app: GetmApp, request: AddRequest) -> None:
    """Queue what `request` holds (run in a thread: it waits on the queue and the network)."""
    try:
        with open_queue(app.location) as q:
            if request.specs:
                ids = q.add_many(request.specs)
                _wake(app)
                app.call_from_thread(app.notify, f"added {len(ids)} job(s)", timeout=3)
            for url in request.prefixes:
                _add_prefix(app, q, url, request)
    except QueueError as e:
        app.call_from_thread(app.notify, str(e), severity="error")


def _add_prefix(app: GetmApp, q: JobQueue, url: str, request: AddRequest) -> None:
    from getm_tui.engine.errors import EngineError
    from getm_tui.queue.tree import Filters, TreeCounts, queue_prefix

    def refused(e: UnsafeName) -> None:
        app.call_from_thread(app.notify, str(e).translate(_CONTROLS), severity="warning")

    access = app.settings.access(anonymous=bool((request.shared.get("info") or {}).get("anonymous")))
    counts = TreeCounts()
    app.call_from_thread(app.notify, f"listing {url} ...", timeout=3)
    try:
        counts = queue_prefix(
            q,
            url,
            app.settings.http(),
            access,
            request.directory,
            Filters(),
            request.shared,
            refused,
            lambda _ids: _wake(app),
        )
    except EngineError as e:
        app.call_from_thread(
            app.notify, f"{e} (listing {url} stopped; what was listed before it is queued)", severity="error"
        )
    app.call_from_thread(app.notify, f"{url}: {counts.describe()}", timeout=6)


def _wake(app: GetmApp) -> None:
    if app.link is not None:
        app.link.send(P.Wake())
