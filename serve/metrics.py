"""Prometheus metrics of the server (GET /metrics), in a registry of its own.

Metrics, labelled by model and version:
- kiln_inference_requests_total{outcome}: success, rejected (queue full, not ready, shutting
  down), timed_out (its timeout passed in the queue), failed (the model's run failed),
  invalid (a bad request for this model)
- kiln_queue_duration_seconds, kiln_compute_duration_seconds, kiln_request_duration_seconds
  (end to end, from the request's arrival to its response): histograms
- kiln_queue_depth: requests waiting for an instance
- kiln_requests_in_flight: inference requests between arrival and response (all models)
- kiln_runtime_threads, kiln_thread_budget: runtime threads in use and the server's budget
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from .repository import ModelVersion

OUTCOMES = ("success", "rejected", "timed_out", "failed", "invalid")
#: Seconds: 50 us (a small model's run) to 10 s (a queue that backs up).
BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
           1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (two servers in one
    process, as in the tests, do not mix their counts)."""

    def __init__(self, thread_budget: int) -> None:
        self.registry = CollectorRegistry()
        labels = ["model", "version"]
        self.requests = Counter("kiln_inference_requests", "Inference requests by outcome",
                                labels + ["outcome"], registry=self.registry)
        self.queue_time = Histogram("kiln_queue_duration_seconds",
                                    "Time requests waited for an instance", labels,
                                    buckets=BUCKETS, registry=self.registry)
        self.compute_time = Histogram("kiln_compute_duration_seconds",
                                      "Time an instance computed a request", labels,
                                      buckets=BUCKETS, registry=self.registry)
        self.request_time = Histogram("kiln_request_duration_seconds",
                                      "Time from a request's arrival to its response", labels,
                                      buckets=BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("kiln_queue_depth", "Requests waiting for an instance",
                                 labels, registry=self.registry)
        self.in_flight = Gauge("kiln_requests_in_flight",
                               "Inference requests between arrival and response",
                               registry=self.registry)
        self.threads = Gauge("kiln_runtime_threads",
                             "Runtime threads of the loaded instances", registry=self.registry)
        self.budget = Gauge("kiln_thread_budget", "The server's runtime thread budget",
                            registry=self.registry)
        self.budget.set(thread_budget)
        self._threads_in_use = 0
        self._lock = threading.Lock()

    def version_ready(self, version: "ModelVersion") -> None:
        """Start reporting `version` (its queue depth, its threads)."""
        scheduler = version.scheduler
        self.queue_depth.labels(version.model, str(version.version)).set_function(
            lambda: scheduler.depth)
        for outcome in OUTCOMES:   # present at 0, so rates start from the first request
            self.requests.labels(version.model, str(version.version), outcome)
        with self._lock:
            self._threads_in_use += version.threads
            self.threads.set(self._threads_in_use)

    def version_gone(self, version: "ModelVersion") -> None:
        """Stop reporting `version`'s queue depth (its counters keep their totals)."""
        try:
            self.queue_depth.remove(version.model, str(version.version))
        except KeyError:
            pass
        with self._lock:
            self._threads_in_use -= version.threads
            self.threads.set(self._threads_in_use)

    def outcome(self, model: str, version: str, outcome: str) -> None:
        self.requests.labels(model, version, outcome).inc()

    def timings(self, model: str, version: str, queue_s: float, compute_s: float,
                total_s: float) -> None:
        self.queue_time.labels(model, version).observe(queue_s)
        self.compute_time.labels(model, version).observe(compute_s)
        self.request_time.labels(model, version).observe(total_s)

    def render(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
