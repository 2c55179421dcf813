"""What a mirror is: a source, a destination and the rules that select files, plus how its jobs are queued;
and the saved mirrors of the config (`[mirror.NAME]` tables), each with the interval `getm-tui run`
re-lists it on.

This module imports nothing else of ours, so that config.py can read the tables with it: a broken table
is a ValueError naming the key, which the config turns into its one line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MirrorSpec:
    """One mirror: `source` (a URL of a directory or prefix), `destination` (a local directory), the
    regular expressions over the relative path that select files, how deep to go (0: the source's own
    files only), and whether files gone from the source are removed; then what its jobs are queued with."""

    source: str
    destination: str
    match: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    depth: int | None = None
    delete: bool = False
    priority: int = 0
    concurrency: int | None = None
    anonymous: bool = False
    no_sync: bool = False


@dataclass(frozen=True)
class SavedMirror:
    """A mirror of the config, by name, re-listed every `interval` seconds by `getm-tui run`."""

    name: str
    spec: MirrorSpec
    interval: float


DEFAULT_INTERVAL = 24 * 3600.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.I)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_KEYS = {"source", "destination", "match", "exclude", "depth", "delete", "interval", "priority"}
_KEYS |= {"concurrency", "anonymous", "no_sync"}


def parse_interval(value: Any) -> float:
    """Seconds from 3600, "90s", "30m", "6h", "1d"; ValueError when it is none of those or not positive."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 6h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"expected a duration like 30m, 6h or 1d, got {value!r}")
        seconds = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not seconds > 0:
        raise ValueError("must be greater than 0")
    return seconds


def compile_patterns(patterns: tuple[str, ...], what: str) -> tuple[re.Pattern[str], ...]:
    """The regular expressions, compiled; ValueError naming the first that is not one."""
    out = []
    for p in patterns:
        try:
            out.append(re.compile(p))
        except re.error as e:
            raise ValueError(f"{what}: not a regular expression: {p!r} ({e})") from None
    return tuple(out)


def parse_tables(tables: Any) -> dict[str, SavedMirror]:
    """The `[mirror.NAME]` tables of a config file; ValueError("mirror.NAME: key: why") for a broken one."""
    if not isinstance(tables, dict):
        raise ValueError("mirror: expected tables like [mirror.NAME]")
    return {name: _one(name, table) for name, table in tables.items()}


def _one(name: str, table: Any) -> SavedMirror:
    where = f"mirror.{name}"
    if not _NAME.match(name):
        raise ValueError(f"{where}: a mirror's name takes letters, digits, '.', '_' and '-'")
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table with source and destination")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    for key in ("source", "destination"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ValueError(f"{where}: {key}: expected a non-empty string")
    match, exclude = _strings(table, "match", where), _strings(table, "exclude", where)
    compile_patterns(match, f"{where}: match")
    compile_patterns(exclude, f"{where}: exclude")
    try:
        interval = parse_interval(table.get("interval", DEFAULT_INTERVAL))
    except ValueError as e:
        raise ValueError(f"{where}: interval: {e}") from None
    spec = MirrorSpec(
        source=table["source"],
        destination=os.path.abspath(os.path.expanduser(table["destination"])),
        match=match,
        exclude=exclude,
        depth=_whole(table, "depth", where, 0),
        delete=_flag(table, "delete", where),
        priority=_whole(table, "priority", where, None) or 0,
        concurrency=_whole(table, "concurrency", where, 1),
        anonymous=_flag(table, "anonymous", where),
        no_sync=_flag(table, "no_sync", where),
    )
    return SavedMirror(name, spec, interval)


def _strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: {key}: expected a regular expression or a list of them")
    return tuple(value)


def _whole(table: dict[str, Any], key: str, where: str, least: int | None) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: {key}: expected a whole number, got {value!r}")
    if least is not None and value < least:
        raise ValueError(f"{where}: {key}: must be at least {least}, got {value}")
    return value


def _flag(table: dict[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {key}: expected true or false, got {value!r}")
    return value
