"""TF Serving's Prometheus metrics for the local server, at ``/monitoring/prometheus/metrics``.

The names, labels and units are TF Serving's own (``:tensorflow:serving:request_count``,
``…:request_latency`` and ``…:runtime_latency``, latencies in microseconds), so a dashboard built
for a TF Serving deployment reads the local server too. Only the counter carries the ``_total``
suffix that ``prometheus_client`` gives every counter. Request latency is the whole API call
(parsing, conversion, queueing, the model, the answer); runtime latency is the signature call alone
(one batch with batching on): their difference is what the server adds to the model.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
"""Where TF Serving serves them once its monitoring config enables Prometheus (ours does)."""
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
RUNTIME_LATENCY = ":tensorflow:serving:runtime_latency"
# TF Serving's buckets: 10 us growing by 1.8x, 33 of them (up to ~2.7 hours).
LATENCY_BUCKETS_US = tuple(10 * 1.8**k for k in range(33))
UNKNOWN_MODEL = ""
"""The model_name of requests for a model or version not served: a client cannot add labels."""


class ServingMetrics:
    """The server's metrics in a registry of their own (several servers can share a process)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.request_count = Counter(
            REQUEST_COUNT,
            "The total number of requests.",
            ["model_name", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            REQUEST_LATENCY,
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=LATENCY_BUCKETS_US,
            registry=self.registry,
        )
        self.runtime_latency = Histogram(
            RUNTIME_LATENCY,
            "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            ["model_name", "API", "runtime"],
            buckets=LATENCY_BUCKETS_US,
            registry=self.registry,
        )
        self._thread = threading.local()

    def observe_request(
        self, model_name: str, api: str, entrypoint: str, status: str, seconds: float
    ) -> None:
        """One API call: ``status`` is ``OK`` or its TF error code (``NOT_FOUND``...)."""
        if status == "NOT_FOUND":
            model_name = UNKNOWN_MODEL
        self.request_count.labels(model_name, status).inc()
        self.request_latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

    def observe_runtime(self, model_name: str, api: str, seconds: float) -> None:
        """One signature call of a loaded SavedModel."""
        self.runtime_latency.labels(model_name, api, "TF2").observe(seconds * 1e6)
        self._thread.runtime_s = getattr(self._thread, "runtime_s", 0.0) + seconds

    def take_thread_runtime(self) -> float:
        """Seconds of signature calls made on this thread since the last take: one request's
        own model time without batching (with batching the batch threads make the calls)."""
        seconds = getattr(self._thread, "runtime_s", 0.0)
        self._thread.runtime_s = 0.0
        return seconds

    def exposition(self) -> bytes:
        """Prometheus' text format, as the scrape endpoint returns it."""
        return generate_latest(self.registry)
