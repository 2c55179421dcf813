"""Connecting to a fleet's PostgreSQL, and what is said about it.

The connection string goes to libpq untouched (URLs, keyword strings, PG* variables, ~/.pgpass, TLS
options); only a connect timeout and an application name are added, when the user set neither. Every
message that names the queue or quotes the driver passes through location.redact: a password written in
the string never reaches output or logs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from getm_tui.queue.errors import QueueError, QueueUnreachable
from getm_tui.queue.location import redact

if TYPE_CHECKING:
    import psycopg

DEFAULT_CONNECT_TIMEOUT = 10


def first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0].strip()


def display_name(location: str) -> str:
    """The queue as it is shown: the connection string without its password."""
    return redact(location.strip(), location)


def say(e: BaseException, location: str) -> str:
    """The driver's message, one line, without the password."""
    return redact(first_line(e), location)


def connect(location: str, timeout_ms: int | None) -> psycopg.Connection[Any]:
    """An autocommit connection; QueueUnreachable when the server cannot be reached or refuses us."""
    import psycopg

    name = display_name(location)
    kwargs: dict[str, Any] = {"autocommit": True}
    try:
        given = psycopg.conninfo.conninfo_to_dict(location)
    except psycopg.ProgrammingError as e:
        raise QueueError(f"not a PostgreSQL connection string: {name} ({say(e, location)})") from None
    if "connect_timeout" not in given and not os.environ.get("PGCONNECT_TIMEOUT"):
        seconds = DEFAULT_CONNECT_TIMEOUT if timeout_ms is None else timeout_ms / 1000
        kwargs["connect_timeout"] = max(2, round(seconds))
    if "application_name" not in given and not os.environ.get("PGAPPNAME"):
        kwargs["application_name"] = "getm-tui"
    try:
        conn: psycopg.Connection[Any] = psycopg.connect(location, **kwargs)
    except psycopg.Error as e:
        raise QueueUnreachable(f"cannot reach the queue database {name}: {say(e, location)}") from None
    return conn
