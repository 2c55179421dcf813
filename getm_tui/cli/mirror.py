"""`getm-tui mirror`: keep a local copy of a remote tree current, through the queue.

`mirror SOURCE DEST` lists SOURCE (an HTTP index page, an s3:// or gs:// prefix, any scheme whose source
can list) and queues a job per file that is new or changed (mirror/sync.py); `mirror NAME` (or --saved
NAME) does the same for a mirror saved in the config; `mirror --status` shows the saved ones and their
last pass. The jobs run wherever the queue runs (`getm-tui run`, the app). Exit codes: 0, 1 when the
source could not be listed, 2 for bad input (an unknown scheme, a source that is not a directory, a bad
regular expression, an unknown saved mirror).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from getm_tui import humanize
from getm_tui.cli.common import CONTROLS, EXIT_FAILED, EXIT_OK, data_dir, settings_from, warn
from getm_tui.cli.verbs import Usage, open_queue_of, verb
from getm_tui.mirror.spec import MirrorSpec, SavedMirror, compile_patterns


def _spec(args: argparse.Namespace, saved: dict[str, SavedMirror]) -> tuple[str | None, MirrorSpec]:
    """(the saved mirror's name or None, what to mirror) from the command line."""
    given = list(args.where or ())
    if args.saved is not None:
        given = [args.saved, *given]
    if len(given) == 1:
        name = given[0]
        if name not in saved:
            known = ", ".join(sorted(saved)) or "none in the config"
            raise Usage(f"no saved mirror {name!r} (saved: {known}); or give SOURCE DEST")
        return name, saved[name].spec
    if len(given) != 2 or args.saved is not None:
        raise Usage("mirror takes SOURCE DEST, or the NAME of a saved mirror ([mirror.NAME] in the config)")
    source, destination = given
    return None, MirrorSpec(
        source=source,
        destination=os.path.abspath(os.path.expanduser(destination)),
        match=tuple(args.match or ()),
        exclude=tuple(args.exclude or ()),
        depth=args.depth,
        delete=args.delete,
        priority=args.priority,
        concurrency=args.concurrency,
        anonymous=args.anonymous,
        no_sync=args.no_sync,
    )


def _checked(spec: MirrorSpec) -> MirrorSpec:
    """The spec with its source validated and its destination made; Usage for what cannot be mirrored."""
    from dataclasses import replace

    from getm_tui.engine.errors import UsageError
    from getm_tui.engine.sources import source_for
    from getm_tui.engine.urls import validate

    try:
        source = validate(spec.source)
        source_for(source)
    except UsageError as e:
        raise Usage(str(e)) from None
    except KeyError:
        raise Usage(f"cannot list {source.split(':', 1)[0]}:// URLs: mirror a directory or prefix") from None
    try:
        compile_patterns(spec.match, "--match")
        compile_patterns(spec.exclude, "--exclude")
    except ValueError as e:
        raise Usage(str(e)) from None
    if os.path.exists(spec.destination) and not os.path.isdir(spec.destination):
        raise Usage(f"not a directory: {spec.destination}")
    try:
        os.makedirs(spec.destination, exist_ok=True)
    except OSError as e:
        raise Usage(f"cannot make {spec.destination}: {e.strerror or e}") from None
    return replace(spec, source=source)


@verb
def cmd_mirror(args: argparse.Namespace) -> int:
    from getm_tui.engine.errors import EngineError, UsageError
    from getm_tui.engine.urls import redact
    from getm_tui.mirror import status
    from getm_tui.mirror.sync import run_pass

    settings = settings_from(args)
    if args.status:
        return _show_status(data_dir(args), settings.mirrors)
    name, spec = _spec(args, settings.mirrors)
    spec = _checked(spec)
    shown = redact(spec.source)

    def say(line: str) -> None:
        warn(line.translate(CONTROLS))

    with open_queue_of(args) as q:
        try:
            result = run_pass(q, spec, settings, say, dry_run=args.dry_run)
        except UsageError as e:
            raise Usage(str(e)) from None
        except EngineError as e:
            if name is not None:
                status.record(data_dir(args), name, False, str(e))
            warn(f"cannot list {shown}: {e} (nothing queued)")
            return EXIT_FAILED
    for relative in result.removed:
        verb_ = "would remove" if args.dry_run else "removed"
        sys.stdout.write(f"{verb_} {relative.translate(CONTROLS)}\n")
    line = result.describe(args.dry_run)
    sys.stdout.write(f"{shown}: {line}\n")
    if name is not None and not args.dry_run:
        status.record(data_dir(args), name, True, line)
    return EXIT_OK


def _show_status(where: str, saved: dict[str, SavedMirror]) -> int:
    from getm_tui.engine.urls import redact
    from getm_tui.mirror import status

    if not saved:
        sys.stdout.write("no saved mirrors ([mirror.NAME] tables in the config)\n")
        return EXIT_OK
    now = time.time()
    for name in sorted(saved):
        m = saved[name]
        last = status.last(where, name)
        every = humanize.duration(m.interval)
        head = f"{name}: {redact(m.spec.source)} -> {m.spec.destination}, every {every}"
        if last is None:
            sys.stdout.write(f"{head}; never listed\n")
            continue
        ago = humanize.duration(max(0.0, now - last.at))
        outcome = "ok" if last.ok else "failed"
        sys.stdout.write(f"{head}; last listed {ago} ago, {outcome}: {last.result.translate(CONTROLS)}\n")
    return EXIT_OK
