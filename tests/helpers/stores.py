"""A resume store for tests of the engine: what a caller such as the supervisor keeps per download."""

from __future__ import annotations

import json
from typing import Any


class MemoryStore:
    """A ResumeStore in memory, as a caller keeps one per download (the queue keeps it in the job's row)."""

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        return self.record

    def save(self, record: dict[str, Any]) -> None:
        self.record = json.loads(json.dumps(record))

    def clear(self) -> None:
        pass  # as the supervisor's store: the caller drops the record when it records the end
