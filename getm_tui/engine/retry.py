"""Backoff between attempts: exponential random windows, as cloud-files does, and Retry-After.

A random delay in a window that doubles (0.5 s, 1 s, 2 s ... up to 60 s by default; the base and the cap are
Options.retry_base and retry_cap) spreads retries of many parts and many clients so they don't hit a
struggling server in lockstep.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from getm_tui.engine.errors import Cancelled, DownloadError, Retryable

log = logging.getLogger(__name__)

T = TypeVar("T")

BASE_DELAY = 0.5
MAX_DELAY = 60.0
# Progress since the last failure that earns a part its retries back: a flaky server that drops now and
# then still gets a big file through, but one that drops every few KiB ends in a clear failure instead of
# retrying for ever (any progress at all used to reset the count).
PROGRESS_FORGIVES = 1024 * 1024


def backoff(
    attempt: int, base: float = BASE_DELAY, cap: float = MAX_DELAY, rng: random.Random | None = None
) -> float:
    """The delay before retry number `attempt` (1 for the first retry): uniform in [window/2, window]."""
    window: float = min(cap, base * (2 ** max(0, attempt - 1)))
    r = (rng or random).random()
    return window / 2 + r * window / 2


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped at MAX_DELAY."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_DELAY)
    import email.utils  # an HTTP date is rare here: a start without it is quicker

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    delay = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, delay), MAX_DELAY)


def delay_for(
    attempt: int, retry_after: float | None, base: float = BASE_DELAY, cap: float = MAX_DELAY
) -> float:
    """The wait before the next attempt: the server's Retry-After when it gave one, else our backoff."""
    if retry_after is not None:
        return retry_after
    return backoff(attempt, base, cap)


def back_off(
    attempt: int,
    error: BaseException,
    retries: int,
    base: float,
    cancel: threading.Event | None,
    cap: float = MAX_DELAY,
) -> None:
    """Wait before retry number `attempt` (Retry-After, else backoff); raise when retries are used up
    (DownloadError) or when cancelled meanwhile (Cancelled)."""
    if attempt > retries:
        raise DownloadError(f"giving up after {retries} retries: {error}") from None
    retry_after = error.retry_after if isinstance(error, Retryable) else None
    delay = delay_for(attempt, retry_after, base, cap)
    log.info("%s; retry %d/%d in %.1fs", error, attempt, retries, delay)
    if cancel is None:
        time.sleep(delay)
    elif cancel.wait(delay):
        raise Cancelled("cancelled") from None


def with_retries(
    fn: Callable[[], T],
    retries: int,
    base: float,
    cancel: threading.Event | None,
    cap: float = MAX_DELAY,
) -> T:
    """fn(), tried again after each Retryable it raises (see back_off)."""
    attempt = 0
    while True:
        try:
            return fn()
        except Retryable as e:
            attempt += 1
            back_off(attempt, e, retries, base, cancel, cap)
