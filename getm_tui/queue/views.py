"""What a front end asks to see of a queue too long to load: an order and a name filter, as plain values.

The orders are the app's (`s` cycles them); each is a total order (the job id breaks ties), so a backend
can page through it by key rather than by offset, and every backend sorts and filters the whole queue with
its indexes rather than the front end sorting the rows it happens to hold.
"""

from __future__ import annotations

from typing import NamedTuple

SORTS = ("added", "name", "state", "size", "progress", "priority")
"""added: oldest first; name: by the name shown, case-insensitively; state: active, queued, paused,
failed, done, canceled; size, progress and priority: largest first."""

STATE_ORDER = ("active", "queued", "paused", "failed", "done", "canceled")


class View(NamedTuple):
    """Jobs whose shown name holds `text` (case-insensitive; "" for every job), in the order `sort`."""

    sort: str = "added"
    text: str = ""

    @property
    def needle(self) -> str:
        """What the filter looks for in a job's lowercased name."""
        return self.text.lower()
