"""Numbers for people: sizes, rates and durations, shared by every front end."""

from __future__ import annotations


def size(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def rate(bps: float | None) -> str:
    return "-" if not bps else size(bps) + "/s"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0 or seconds != seconds:
        return "-"
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
