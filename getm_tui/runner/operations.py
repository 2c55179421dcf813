"""What the supervisor tells operations about: hooks (hooks.py) and Prometheus metrics (metrics.py).

One object the supervisor calls at a job's start, progress and end, after each commit, and at shutdown, so
that its loop knows nothing of either. Metrics are loaded only when an address is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from getm_tui.config import Settings
from getm_tui.engine import Progress
from getm_tui.queue.records import Finished, Job
from getm_tui.runner.hooks import Hooks, Report

if TYPE_CHECKING:
    from getm_tui.runner.metrics import RunnerMetrics


class OperationsError(Exception):
    """Something asked for cannot be set up (the metrics address); one line for the user."""


class Operations:
    def __init__(self, settings: Settings, queue_location: str, report: Report) -> None:
        self.settings = settings
        self.queue_location = queue_location
        self.hooks = Hooks(settings.on_done, settings.on_fail, settings.hook_timeout, report)
        self.metrics: RunnerMetrics | None = None

    def start(self) -> None:
        """Serve metrics when configured; OperationsError when the address cannot be served."""
        address = self.settings.metrics
        if not address:
            return
        from getm_tui.runner.metrics import RunnerMetrics

        metrics = RunnerMetrics(self.queue_location, int(self.settings.queue_timeout * 1000))
        try:
            metrics.serve(address)
        except OSError as e:
            raise OperationsError(f"cannot serve metrics on {address}: {e.strerror or e}") from None
        self.metrics = metrics

    def job_started(self, job: Job, resumed: bool) -> None:
        if self.metrics is not None:
            self.metrics.job_started(job.id, job.url, resumed)

    def progress(self, job_id: int, p: Progress) -> None:
        if self.metrics is not None:
            self.metrics.progress(job_id, p)

    def job_ended(
        self, job_id: int, kind: str, payload: Finished | str | None, reason: str, row: Callable[[], Job]
    ) -> None:
        """A job ended (hostmsg.End); `row` reads it as the queue now holds it, for its hook."""
        if self.metrics is not None:
            self.metrics.job_ended(job_id, kind, payload, reason)
        if kind != "cancelled" and self.hooks.enabled:
            self.hooks.job_ended(row())

    def committed(self) -> None:
        """The supervisor's writes so far are committed: the hooks of the jobs they ended may start."""
        self.hooks.release()

    def close(self, grace: float | None = None) -> None:
        """Let the last hooks run (each within its time limit, or within `grace` seconds in all when the
        runner was told to stop) and stop serving metrics."""
        self.hooks.close(grace)
        if self.metrics is not None:
            self.metrics.close()
