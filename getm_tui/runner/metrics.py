"""Prometheus metrics of a runner, served on HOST:PORT by `getm-tui run --metrics` (config `metrics`).

The supervisor tells `RunnerMetrics` what happens (a job starts, reports progress, ends); a scrape reads
that under one lock, and the queue's counts from a connection of the scrape's own thread (the supervisor's
connection is its loop's alone, and a scrape must not wait on its turn). prometheus-client is imported only
here, and this module only when metrics are asked for.

    getm_downloaded_bytes_total{host}             bytes fetched (a resumed job's from its first report on)
    getm_host_throughput_bytes_per_second{host}   current rate of the jobs running against each host
    getm_host_connections{host}                   connections open to each host
    getm_retries_total                            retries of parts after faults
    getm_jobs{state}                              jobs in the queue per state
    getm_queue_depth                              jobs waiting to run (queued)
    getm_jobs_running                             jobs this runner runs now
    getm_jobs_finished_total{result}              jobs ended: done or failed
    getm_job_failures_total{reason}               failed jobs by reason (checksum, archive, http_404...)
    getm_verifications_total{outcome}             verified, unverified, mismatch, archive_intact,
                                                  archive_damaged

`host` is the URL's host and port, never its user or query.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from getm_tui.config import split_address
from getm_tui.engine import Progress
from getm_tui.queue.interface import open_queue
from getm_tui.queue.records import Finished

log = logging.getLogger(__name__)

SMOOTHING = 0.3  # weight of the newest interval in a job's rate


@dataclass
class _Job:
    host: str
    counted: int | None  # the `done` last counted; None until the first report of a resumed job
    retries: int = 0
    connections: int = 0
    rate: float = 0.0
    at: float = 0.0


def host_of(url: str) -> str:
    """The URL's host[:port], for a label: no user, password, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return ""


class RunnerMetrics:
    def __init__(self, queue_location: str, queue_timeout_ms: int) -> None:
        self.queue_location = queue_location
        self.queue_timeout_ms = queue_timeout_ms
        self._lock = threading.Lock()
        self._jobs: dict[int, _Job] = {}
        self._bytes: collections.Counter[str] = collections.Counter()
        self._retries = 0
        self._finished: collections.Counter[str] = collections.Counter()
        self._failures: collections.Counter[str] = collections.Counter()
        self._verifications: collections.Counter[str] = collections.Counter()
        self._server: Any = None

    # -- what the supervisor tells -------------------------------------------------------------------

    def job_started(self, job_id: int, url: str, resumed: bool) -> None:
        with self._lock:
            self._jobs[job_id] = _Job(host_of(url), None if resumed else 0, at=time.monotonic())

    def progress(self, job_id: int, p: Progress) -> None:
        now = time.monotonic()
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            if job.counted is not None and p.done > job.counted:
                gained = p.done - job.counted
                self._bytes[job.host] += gained
                if now > job.at:
                    instant = gained / (now - job.at)
                    job.rate = instant if not job.rate else (1 - SMOOTHING) * job.rate + SMOOTHING * instant
            if p.retries > job.retries:
                self._retries += p.retries - job.retries
            job.retries = max(job.retries, p.retries)
            job.counted, job.at, job.connections = p.done, now, p.connections

    def job_ended(self, job_id: int, kind: str, payload: Finished | str | None, reason: str) -> None:
        """How a job ended (hostmsg.End's kind and payload; `reason` classifies a failure)."""
        with self._lock:
            self._jobs.pop(job_id, None)
            if kind == "cancelled":
                return
            self._finished["done" if kind == "done" else "failed"] += 1
            if isinstance(payload, Finished):
                archive = any(i.get("algorithm") == "archive" for i in payload.integrity)
                self._verifications["archive_intact" if archive else payload.verdict] += 1
                return
            self._failures[reason or "internal"] += 1
            if kind == "mismatch":
                self._verifications["archive_damaged" if reason == "archive" else "mismatch"] += 1

    # -- scrapes -------------------------------------------------------------------------------------

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counts = self._queue_counts()
        with self._lock:
            downloaded = CounterMetricFamily("getm_downloaded_bytes", "Bytes downloaded", labels=["host"])
            for host, n in sorted(self._bytes.items()):
                downloaded.add_metric([host], n)
            rate = GaugeMetricFamily(
                "getm_host_throughput_bytes_per_second", "Current download rate per host", labels=["host"]
            )
            conns = GaugeMetricFamily("getm_host_connections", "Open connections per host", labels=["host"])
            per_host: dict[str, list[float]] = {}
            for job in self._jobs.values():
                sums = per_host.setdefault(job.host, [0.0, 0.0])
                sums[0] += job.rate
                sums[1] += job.connections
            for host, (r, c) in sorted(per_host.items()):
                rate.add_metric([host], r)
                conns.add_metric([host], c)
            yield downloaded
            yield rate
            yield conns
            yield CounterMetricFamily("getm_retries", "Retries of parts after faults", value=self._retries)
            yield GaugeMetricFamily("getm_jobs_running", "Jobs this runner runs now", value=len(self._jobs))
            yield _counter("getm_jobs_finished", "Jobs ended, by result", "result", self._finished)
            yield _counter("getm_job_failures", "Failed jobs, by reason", "reason", self._failures)
            yield _counter(
                "getm_verifications", "Integrity outcomes of ended jobs", "outcome", self._verifications
            )
        if counts is not None:
            jobs = GaugeMetricFamily("getm_jobs", "Jobs in the queue, by state", labels=["state"])
            for state, n in sorted(counts.items()):
                jobs.add_metric([state], n)
            yield jobs
            yield GaugeMetricFamily("getm_queue_depth", "Jobs waiting to run", value=counts.get("queued", 0))

    def _queue_counts(self) -> dict[str, int] | None:
        try:
            with open_queue(self.queue_location, timeout_ms=self.queue_timeout_ms) as q:
                return q.counts()
        except Exception as e:  # a scrape must answer with what it has, whatever the queue says
            log.warning("metrics: cannot read the queue's counts: %s", e)
            return None

    # -- the endpoint --------------------------------------------------------------------------------

    def serve(self, address: str) -> None:
        """Serve /metrics on `address` (HOST:PORT) from a thread; OSError if it cannot."""
        from prometheus_client import CollectorRegistry, start_http_server

        host, port = split_address(address)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        self._server, _thread = start_http_server(port, host, registry)
        log.info("serving Prometheus metrics on http://%s/metrics", address)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _counter(name: str, text: str, label: str, counts: collections.Counter[str]) -> Any:
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(name, text, labels=[label])
    for key, n in sorted(counts.items()):
        family.add_metric([key], n)
    return family
