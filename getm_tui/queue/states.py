"""The states a job can be in."""

from __future__ import annotations

STATES = ("queued", "active", "paused", "done", "failed", "canceled")
