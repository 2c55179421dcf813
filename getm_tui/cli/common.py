"""What the commands share: exit codes, the one-line failure, the data dir, logging, TLS overrides."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from getm_tui.config import ConfigError, Settings, load

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DATA_DIR_ENV = "GETM_TUI_DATA_DIR"

# C0/C1 control characters become "?" in anything shown, so text from a server cannot drive the terminal.
CONTROLS = {c: "?" for c in (*range(0x20), *range(0x7F, 0xA0))}


def warn(message: str) -> None:
    sys.stderr.write(f"getm-tui: {message}\n")


def fail(message: str, code: int = EXIT_USAGE) -> int:
    warn(message)
    return code


def data_dir(args: argparse.Namespace) -> str:
    """The queue's directory: --data-dir, else $GETM_TUI_DATA_DIR, else the user data dir."""
    chosen = getattr(args, "data_dir", None) or os.environ.get(DATA_DIR_ENV)
    if not chosen:
        from getm_tui.config import default_data_dir

        chosen = default_data_dir()
    return os.path.abspath(os.path.expanduser(chosen))


def queue_override(args: argparse.Namespace) -> dict[str, str]:
    """Settings overrides for --queue (before or after the verb); none when it is not given."""
    chosen = getattr(args, "queue", None)
    return {"queue": chosen} if chosen is not None else {}


def queue_location(args: argparse.Namespace, settings: Settings) -> str:
    """Where the queue is: --queue, else $GETM_TUI_QUEUE, else the config's `queue` (all three are
    settings.queue), else the SQLite file in the data dir. A queue named there is a database: a directory
    is named by --data-dir, where its supervisor's lock lives too."""
    if not settings.queue:
        return data_dir(args)
    from getm_tui.queue.location import is_database

    if not is_database(settings.queue):
        raise ConfigError(
            "queue: expected a PostgreSQL URL (postgresql://user@host/db) or libpq keywords (host=H dbname=D)"
        )
    return settings.queue


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        "concurrency": getattr(args, "concurrency", None),
        "part_size": getattr(args, "part_size", None),
        "retries": getattr(args, "retries", None),
        "connect_timeout": getattr(args, "connect_timeout", None),
        "read_timeout": getattr(args, "read_timeout", None),
    }
    if getattr(args, "insecure", False):
        overrides["verify_tls"] = False
    return load(args.config, {**overrides, **queue_override(args), **sync_override(args)})


def setup_logging(verbose: int, rich_console: object | None = None) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    root.handlers.clear()
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("getm-tui: %(levelname)s: %(message)s"))
    if rich_console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=rich_console, show_path=False, show_time=False)  # type: ignore[arg-type]
    from getm_tui.engine.urls import RedactingFilter

    handler.addFilter(RedactingFilter())  # -vv shows urllib3's lines, which hold each request's query
    root.addHandler(handler)
    root.setLevel(level)


INSECURE_VERBS = (None, "run", "add", "get")


def insecure_override(args: argparse.Namespace) -> dict[str, bool]:
    """Settings overrides for --insecure (before or after the verb); none when it is not given."""
    return {"verify_tls": False} if getattr(args, "insecure", False) else {}


def sync_override(args: argparse.Namespace) -> dict[str, bool]:
    """Settings overrides for --no-sync; none when it is not given (the config and environment decide)."""
    return {"sync": False} if getattr(args, "no_sync", False) else {}


def tls_off_warning(args: argparse.Namespace, settings: Settings, what: str) -> str | None:
    """The one warning line when TLS verification is off, naming why (a flag, or the config), else None."""
    if settings.verify_tls:
        return None
    flag = getattr(args, "insecure", False)
    why = "--insecure" if flag else "verify_tls = false in the config or environment"
    return f"TLS certificate verification is off {what} ({why})"
