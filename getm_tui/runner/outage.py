"""A fleet's database went away while a runner holds jobs: what the runner could not write, and a thread
that connects again.

The runner does not stop: its hosts keep downloading what they hold. What they say that needs the
database (resume records, probes, how jobs ended, the history's lines) is kept here, in order, and
written when the database is back, through the same code that writes it when all is well (so it is
fenced by the lease epochs as any write is). The connection is retried in a thread, with a growing
pause, so the runner's loop never waits on a connect that hangs.

A progress record is answered at once (the database keeps the older one, which never claims more than
the file holds); the records the engine acts upon (the claim of a partial file before it is created, the
finished record before the rename) are answered only once written, so those jobs wait for the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from getm_tui.queue.errors import QueueError
from getm_tui.runner import hostmsg as H

log = logging.getLogger(__name__)

FIRST_PAUSE = 0.25
LONGEST_PAUSE = 8.0


@dataclass
class Kept:
    """A host's message that needs the database (host None: a line of a job's history), and whether
    the host already has its answer."""

    host: Any
    msg: H.Save | H.Probe | H.End | H.Log
    answered: bool = False


def acted_upon(record: dict[str, Any]) -> bool:
    """Whether the engine creates or renames files on the strength of this record once it is saved:
    the claim (no parts yet) and the finished record. Those are answered only once written."""
    return "finished" in record or not record.get("parts")


class Outage:
    """What a runner keeps while its database is away, and the thread connecting again (`reconnect`
    raises QueueError until it succeeds; `back` is set once it did)."""

    def __init__(self, reconnect: Callable[[], None], kept: list[Kept]) -> None:
        self.kept = kept
        self.back = threading.Event()
        self._reconnect = reconnect
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._retry, daemon=True, name="queue-reconnect")
        self._thread.start()

    def _retry(self) -> None:
        pause = FIRST_PAUSE
        while not self._stop.wait(pause):
            try:
                self._reconnect()
            except QueueError as e:
                log.debug("the queue database is still away: %s", e)
                pause = min(pause * 2, LONGEST_PAUSE)
                continue
            self.back.set()
            return

    def close(self) -> None:
        """Stop retrying (the thread may be in a connect: it is left to end on its own)."""
        self._stop.set()
        self._thread.join(1.0)

    def keep(self, host: Any, msg: H.Save | H.Probe | H.End | H.Log, answered: bool = False) -> None:
        if isinstance(msg, H.Save) and answered:
            # A newer progress record replaces an older one of the same job not yet written.
            for i in range(len(self.kept) - 1, -1, -1):
                k = self.kept[i]
                if k.msg.job_id == msg.job_id:
                    if isinstance(k.msg, H.Save) and k.answered:
                        self.kept[i] = Kept(host, msg, True)
                        return
                    break
        self.kept.append(Kept(host, msg, answered))
