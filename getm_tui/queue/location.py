"""Where a queue lives, as a user names it: a data directory (SQLite) or a PostgreSQL connection string.

A connection string is handed to libpq as it is (URLs, keyword strings, PG* variables, ~/.pgpass and TLS
options all work as they do for psql); this module only tells the two kinds apart and makes the text
safe to show: a password never reaches a screen, a log or an error message.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

DATABASE_SCHEMES = ("postgresql://", "postgres://")

# `key=value` pairs of a libpq keyword string (a value may be quoted, with \' and \\ escapes).
_KEYWORD = re.compile(r"\s*[A-Za-z_]+\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")
_PASSWORD_KEYWORD = re.compile(r"((?<![^\s])password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.I)
_URL_USERINFO = re.compile(r"(postgres(?:ql)?://[^:/@?#\s]*):[^@/?#\s]*@", re.I)
_URL_SECRET = re.compile(r"^\s*postgres(?:ql)?://[^:/@?#\s]*:([^@/?#\s]*)@", re.I)
_URL_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#\s]*", re.I)
HIDDEN = "***"


def is_database(location: str) -> bool:
    """A PostgreSQL connection string (a libpq URL, or key=value pairs), not a data directory."""
    text = location.strip()
    return text.lower().startswith(DATABASE_SCHEMES) or _is_keyword_string(text)


def _is_keyword_string(text: str) -> bool:
    """`host=db1 dbname=jobs`: every word a key=value pair (a directory's name has no such shape)."""
    if "=" not in text or text.startswith(("/", "~", ".")):
        return False
    pos = 0
    while pos < len(text):
        m = _KEYWORD.match(text, pos)
        if m is None or m.end() == pos:
            return text[pos:].strip() == ""
        pos = m.end()
    return True


def redact(text: str, location: str | None = None) -> str:
    """`text` with every password hidden: in a URL's user info or query, in a keyword string, and the
    literal password `location` holds wherever else it appears (a driver's message may quote it)."""
    out = _URL_USERINFO.sub(lambda m: f"{m.group(1)}:{HIDDEN}@", text)
    out = _URL_PASSWORD_PARAM.sub(lambda m: m.group(1) + HIDDEN, out)
    out = _PASSWORD_KEYWORD.sub(lambda m: m.group(1) + HIDDEN, out)
    secret = password_of(location) if location else None
    if secret:
        out = out.replace(secret, HIDDEN)
    return out


def password_of(location: str) -> str | None:
    """The password written in a connection string, if any (one from ~/.pgpass or PGPASSWORD is never
    quoted by us, so only this one needs hiding)."""
    m = _URL_SECRET.search(location)
    if m and m.group(1):
        return unquote(m.group(1))
    m2 = _URL_PASSWORD_PARAM.search(location)
    if m2 and m2.end() > m2.end(1):
        return unquote(location[m2.end(1) : m2.end()])
    m3 = _PASSWORD_KEYWORD.search(location)
    if m3:
        value = m3.group(2)
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        return value or None
    return None
