"""The load of the serving benchmark: timed direct signature calls and keep-alive HTTP clients.

:func:`in_process_floor` calls a signature in this process; :func:`http_level` sends one request
body from concurrent client threads. Each returns a :class:`Level` (a latency per answered request,
errors and wall time), the row ``serving/loadtest.py`` writes into BENCHMARKS.md.
:func:`model_call_totals` reads the server's runtime latency metric, so a level can also say how
long the model itself ran inside the server for the same requests.
"""

from __future__ import annotations

import dataclasses
import http.client
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from serving.metrics import PROMETHEUS_PATH, RUNTIME_LATENCY


@dataclasses.dataclass
class Level:
    """What one mode and concurrency measured: a latency per answered request, and errors."""

    mode: str
    concurrency: int
    latencies_s: list[float]
    errors: int
    wall_s: float
    model_call_ms: float = float("nan")
    """Mean time of one signature call inside the server (one batch with batching), from its
    runtime latency metric; the floor's own mean for the in-process level."""
    overheads_s: list[float] = dataclasses.field(default_factory=list)
    """Per answered request that reported its model time (``Server-Timing``): its latency at the
    client minus that time, i.e. what HTTP, JSON and the server added to that very call."""

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_s) / self.wall_s if self.wall_s > 0 else float("nan")

    def row(self) -> dict[str, str]:
        p50, p95, p99 = percentiles_ms(self.latencies_s)
        return {
            "mode": self.mode,
            "concurrency": str(self.concurrency),
            "requests": f"{len(self.latencies_s) + self.errors:,}",
            "errors": str(self.errors),
            "requests/s": "-" if np.isnan(self.requests_per_s) else f"{self.requests_per_s:,.0f}",
            "mean": _ms(self.mean_ms),
            "p50": _ms(p50),
            "p95": _ms(p95),
            "p99": _ms(p99),
            "model call, mean": _ms(self.model_call_ms),
        }

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.latencies_s)) * 1e3 if self.latencies_s else float("nan")


def percentiles_ms(latencies_s: list[float], quantiles=(50, 95, 99)) -> list[float]:
    """Latency percentiles in milliseconds (linear interpolation); NaN without a sample."""
    if not latencies_s:
        return [float("nan")] * len(quantiles)
    return [float(value) * 1e3 for value in np.percentile(latencies_s, quantiles)]


def _ms(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.2f} ms"


def in_process_floor(saved_model_dir: Path, review: str, calls: int) -> Level:
    """``calls`` direct calls of ``serving_default`` on one review, after a few to warm up."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]
    for _ in range(50):  # as many as the server's warmup requests
        signature(text=tf.constant([review]))
    latencies = []
    started = time.perf_counter()
    for _ in range(calls):
        start = time.perf_counter()
        signature(text=tf.constant([review]))["probability"].numpy()
        latencies.append(time.perf_counter() - start)
    wall = time.perf_counter() - started
    level = Level("in-process signature call (floor)", 1, latencies, 0, wall)
    return dataclasses.replace(level, model_call_ms=level.mean_ms)


def http_level(
    mode: str, url: str, path: str, body: bytes, concurrency: int, requests: int, seconds: float
) -> Level:
    """``requests`` POSTs of ``body`` (or as many as fit in ``seconds``) over ``concurrency``
    keep-alive connections; a non-200 answer or a broken connection is an error."""
    address = urlsplit(url)
    budget = _Budget(requests, seconds)
    latencies: list[float] = []
    overheads: list[float] = []
    errors: list[int] = []
    start_line = threading.Barrier(concurrency + 1)

    def client() -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        connection.connect()  # before the clock starts, as a pooled client would be
        start_line.wait()
        while budget.take():
            start = time.perf_counter()
            try:
                connection.request("POST", path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                answered = response.status == 200
            except (OSError, http.client.HTTPException):
                answered = False
                connection.close()  # http.client reconnects on the next request
            if answered:
                latencies.append(time.perf_counter() - start)
                if (model_ms := _model_ms(response.getheader("Server-Timing"))) is not None:
                    overheads.append(latencies[-1] - model_ms / 1e3)
            else:
                errors.append(1)
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start_line.wait()
    budget.start()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return Level(mode, concurrency, latencies, len(errors), wall, overheads_s=overheads)


def _model_ms(server_timing: str | None) -> float | None:
    """The ``dur`` of the ``model`` metric in a ``Server-Timing`` header (milliseconds)."""
    match = re.search(r"(?:^|,)\s*model\s*;[^,]*?dur=([0-9.]+)", server_timing or "")
    return float(match[1]) if match else None


class _Budget:
    """Hands out up to ``requests`` turns to the client threads, until ``seconds`` have passed."""

    def __init__(self, requests: int, seconds: float):
        self._left, self._seconds = requests, seconds
        self._deadline = float("inf")
        self._lock = threading.Lock()

    def start(self) -> None:
        self._deadline = time.monotonic() + self._seconds

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0 or time.monotonic() > self._deadline:
                return False
            self._left -= 1
            return True


def model_call_totals(url: str, model: str) -> tuple[float, float] | None:
    """(Total seconds, calls) of ``model``'s signature calls so far, from the server's
    ``runtime_latency`` metric; None where the server exposes no Prometheus metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url + PROMETHEUS_PATH, timeout=30) as response:
            text = response.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    totals = {"_sum": 0.0, "_count": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            suffix = sample.name.removeprefix(RUNTIME_LATENCY)
            if suffix in totals and sample.labels.get("model_name") == model:
                totals[suffix] += sample.value
    return totals["_sum"] / 1e6, totals["_count"]
