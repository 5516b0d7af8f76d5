"""Prometheus metrics of one service, in a registry of its own (not the global one)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """The counters and gauges ``/metrics`` shows."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter("pyramidd_jobs", "Jobs ended, by watch and outcome (done, failed).",
                            ["watch", "outcome"], registry=r)
        self.failures = Counter("pyramidd_failures", "Failed jobs by kind of failure.",
                                ["watch", "kind"], registry=r)
        self.attempts = Counter("pyramidd_attempts", "Build attempts started.", ["watch"], registry=r)
        self.retries = Counter("pyramidd_retries", "Attempts retried after a render worker died.",
                               ["watch"], registry=r)
        self.tiles = Counter("pyramidd_tiles", "Tiles written.", ["watch"], registry=r)
        self.bytes = Counter("pyramidd_output_bytes", "Bytes of pyramids written.", ["watch"],
                             registry=r)
        self.source_bytes = Counter("pyramidd_source_bytes_read",
                                    "Bytes sources read from their inputs, where a source counts them"
                                    " (warped inputs do).", ["watch"], registry=r)
        self.source_fallbacks = Counter("pyramidd_source_fallbacks",
                                        "Thrash fallbacks of warped sources to narrower output blocks.",
                                        ["watch"], registry=r)
        self.seconds = Histogram("pyramidd_job_seconds", "Wall time of successful jobs.", ["watch"],
                                 buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, float("inf")),
                                 registry=r)
        self.waiting = Gauge("pyramidd_queue_waiting", "Settled files waiting for a job slot.",
                             registry=r)
        self.queue_capacity = Gauge("pyramidd_queue_capacity", "Size of the job queue.", registry=r)
        self.running = Gauge("pyramidd_jobs_running", "Jobs being built.", registry=r)
        self.recovered = Counter("pyramidd_recovered_jobs",
                                 "Jobs found open in the journal at start, by action taken.",
                                 ["action"], registry=r)
        self.reloads = Counter("pyramidd_config_reloads", "Config reloads, by result (ok, rejected).",
                               ["result"], registry=r)
        self.worker_restarts = Gauge("pyramidd_worker_restarts",
                                     "Render workers replaced after dying.", registry=r)
        self.ready = Gauge("pyramidd_ready", "1 once the watchers are armed, 0 when stopping.",
                           registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
