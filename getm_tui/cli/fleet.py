"""`getm-tui runners`: the runners of a fleet that share a PostgreSQL queue, for people and for scripts.

Each runner says where it runs (host and process id), since when, when it last renewed its leases, how
many jobs it holds, and its throughput over its last heartbeat; alive, lost (it stopped renewing: killed,
its host gone or cut off from the database) or stopped (it left, and its jobs went back to the queue).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from getm_tui import humanize
from getm_tui.cli.common import EXIT_OK, fail
from getm_tui.cli.verbs import clean, open_queue_of, verb, when

_HEADER = ("ID", "HOST", "PID", "STATUS", "STARTED", "LAST BEAT", "HELD", "RATE", "DONE", "DATA DIR")


@verb
def cmd_runners(args: argparse.Namespace) -> int:
    from getm_tui.cli.verbs import is_fleet

    with open_queue_of(args) as q:
        if not is_fleet(q):
            return fail(
                "runners: this queue is the data dir's own, run by one supervisor; a fleet's runners share a "
                "PostgreSQL queue (--queue URL, GETM_TUI_QUEUE or the config's queue)"
            )
        runners = q.runners()
    if args.json:
        sys.stdout.write(json.dumps([r._asdict() for r in runners], indent=2) + "\n")
        return EXIT_OK
    now = time.time()
    rows = [
        (
            str(r.id),
            clean(r.host),
            str(r.pid),
            r.status,
            when(r.started),
            f"{humanize.duration(max(0.0, now - r.heartbeat))} ago",
            str(r.jobs_held),
            humanize.rate(r.rate) if r.status == "alive" else "-",
            str(r.jobs_done),
            clean(r.data_dir),
        )
        for r in runners
    ]
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(_HEADER)]
    widths[-1] = 0
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
           for row in (_HEADER, *rows)]  # fmt: skip
    sys.stdout.write("".join(out))
    return EXIT_OK
