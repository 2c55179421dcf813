"""Whether this process may fork now: the one rule every part of getm-tui that starts processes follows.

A fork copies only the calling thread, with every lock as it was at that instant: a lock another thread
held (logging's, an allocator's, a queue's) stays locked forever in the child. So a process forks only
while it has no other thread; otherwise its children start fresh (a fork server, or spawn). The engine's
workers, the supervisor's job hosts and `getm-tui run`'s supervisor all decide with this.
"""

from __future__ import annotations

import threading


def fork_is_safe() -> bool:
    """True while this process runs no thread but the calling one."""
    return threading.active_count() == 1
