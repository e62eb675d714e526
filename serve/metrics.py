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
- kiln_batch_size: rows of each batch the batcher ran (histogram; versions with batching)
- kiln_padded_rows_total: rows of zeros added to fill a batch up to a compiled batch size
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
#: Rows of a batch: each power of two up to 1024.
BATCH_BUCKETS = tuple(float(1 << i) for i in range(11))


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
        self.batch_size = Histogram("kiln_batch_size", "Rows of each batch the batcher ran",
                                    labels, buckets=BATCH_BUCKETS, registry=self.registry)
        self.padded_rows = Counter("kiln_padded_rows",
                                   "Rows of zeros that filled batches up to a compiled size",
                                   labels, registry=self.registry)
        self._depth_of: dict[tuple[str, str], "ModelVersion"] = {}
        self._threads_in_use = 0
        self._lock = threading.Lock()

    def version_ready(self, version: "ModelVersion") -> None:
        """Start reporting `version` (its queue depth, its threads)."""
        scheduler = version.scheduler
        labels = (version.model, str(version.version))
        self.queue_depth.labels(*labels).set_function(lambda: scheduler.depth)
        for outcome in OUTCOMES:   # present at 0, so rates start from the first request
            self.requests.labels(*labels, outcome)
        if version.batch_sizes:
            self.batch_size.labels(*labels)
            self.padded_rows.labels(*labels)
        with self._lock:
            self._depth_of[labels] = version
            self._threads_in_use += version.threads
            self.threads.set(self._threads_in_use)

    def version_gone(self, version: "ModelVersion") -> None:
        """Stop reporting `version`'s queue depth (its counters keep their totals), unless a
        new load of the same version already reports its own."""
        labels = (version.model, str(version.version))
        with self._lock:
            if self._depth_of.get(labels) is version:
                del self._depth_of[labels]
                try:
                    self.queue_depth.remove(*labels)
                except KeyError:
                    pass
            self._threads_in_use -= version.threads
            self.threads.set(self._threads_in_use)

    def batch_run(self, version: "ModelVersion", rows: int, padded: int) -> None:
        """The batcher ran a batch of `rows` rows, `padded` more of zeros."""
        labels = (version.model, str(version.version))
        self.batch_size.labels(*labels).observe(rows)
        if padded:
            self.padded_rows.labels(*labels).inc(padded)

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
