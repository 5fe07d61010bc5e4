"""Prometheus metrics for the API (``GET /metrics``) and the workers (their own port).

Each process builds one ``Metrics`` (never the global registry, so tests can build many).
Two kinds of figures:

* instruments the code updates: upload bytes, job outcomes and durations, decode and
  inference seconds, segments and segments per second;
* figures read from the job store at scrape time (``StoreCollector``): jobs by status and
  queue depth, the same on every replica because they come from the one database.

Multi-process: when several processes serve one ``/metrics`` (``uvicorn --workers N``,
gunicorn), set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory private to that group
of processes before they start (prometheus-client reads it at import). Every process then
writes its values to files there and a scrape sums them (``MultiProcessCollector``). Each
``python -m app serve``/``worker`` is otherwise one process and needs no such directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.domain import JobStatus
from app.errors import ServiceError
from app.store.base import JobStore

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RATE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class StoreCollector(Collector):
    """Jobs by status and queue depth, queried when scraped. A database that is away
    yields ``vas_store_up 0`` instead of failing the whole scrape."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("vas_store_up", "1 when the job store answered this scrape")
        try:
            counts = self._store.count_by_status()
        except ServiceError as exc:
            log.warning("metrics: job store unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        by_status = GaugeMetricFamily("vas_jobs", "Jobs in the store by status", labels=["status"])
        for status in JobStatus:
            by_status.add_metric([status.value], counts.get(status, 0))
        yield by_status
        depth = GaugeMetricFamily("vas_queue_depth", "Jobs waiting for a worker (status queued)")
        depth.add_metric([], counts.get(JobStatus.QUEUED, 0))
        yield depth


class Metrics:
    """The instruments of one process; ``render`` produces the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.upload_bytes = Counter("vas_upload_bytes", "Bytes of accepted video uploads", registry=r)
        self.jobs_submitted = Counter("vas_jobs_submitted", "Jobs accepted by the API", registry=r)
        self.job_outcomes = Counter(
            "vas_job_outcomes",
            "Finished attempts by outcome (succeeded, failed, retry, released, abandoned, error)",
            ["outcome"],
            registry=r,
        )
        self.job_duration = Histogram(
            "vas_job_duration_seconds",
            "Claim to outcome, per attempt",
            ["model", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.decode_seconds = Counter(
            "vas_decode_seconds", "Seconds spent decoding and preprocessing video", ["model"], registry=r
        )
        self.inference_seconds = Counter(
            "vas_inference_seconds", "Seconds spent in model inference", ["model"], registry=r
        )
        self.segments = Counter("vas_segments", "Segments analysed by succeeded jobs", ["model"], registry=r)
        self.segments_per_second = Histogram(
            "vas_segments_per_second",
            "Analysis throughput of each succeeded job (segments / analysis seconds)",
            ["model"],
            buckets=RATE_BUCKETS,
            registry=r,
        )

        self.decode_frames = Counter(
            "vas_decode_frames",
            "Frames decoded for succeeded jobs (rate() of it: decode frames per second)",
            ["model"],
            registry=r,
        )
        self.batch_size = Histogram(
            "vas_batch_size",
            "Views per forward pass, as run on the device (after any out-of-memory split)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )

    def for_worker(self) -> None:
        """A worker's extras: every forward pass's size, and the GPU's memory and use."""
        from app.analysis.batch_events import add_batch_listener
        from app.gpu_metrics import GpuCollector

        add_batch_listener(self.batch_size.observe)
        self.registry.register(GpuCollector())

    def record_job(self, model: str, outcome: str, seconds: float) -> None:
        self.job_outcomes.labels(outcome).inc()
        self.job_duration.labels(model, outcome).observe(seconds)

    def record_results(
        self,
        model: str,
        segments: int,
        seconds: float,
        decode_seconds: float,
        inference_seconds: float,
        decoded_frames: int = 0,
    ) -> None:
        """Throughput of a succeeded job (``seconds``: claim to analysed), its decode and
        inference seconds (the engine's timings; decoding overlaps inference) and frames."""
        self.segments.labels(model).inc(segments)
        self.decode_frames.labels(model).inc(max(decoded_frames, 0))
        if seconds > 0 and segments:
            self.segments_per_second.labels(model).observe(segments / seconds)
        for value, counter in (
            (decode_seconds, self.decode_seconds),
            (inference_seconds, self.inference_seconds),
        ):
            if value >= 0:
                counter.labels(model).inc(value)

    def scrape_registry(self, store: JobStore | None = None) -> CollectorRegistry:
        """This process's instruments, or every process's with ``PROMETHEUS_MULTIPROC_DIR``,
        plus the store's figures when ``store`` is given."""
        path = multiproc_dir()
        if path:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=path)
        else:
            registry = CollectorRegistry()
            registry.register(_Forward(self.registry))
        if store is not None:
            registry.register(StoreCollector(store))
        return registry

    def render(self, store: JobStore | None = None) -> bytes:
        return generate_latest(self.scrape_registry(store))


class _Forward(Collector):
    """Exposes another registry's metrics (so the store collector never joins ``registry``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


def serve_worker_metrics(metrics: Metrics, host: str, port: int) -> Any:
    """Expose a worker's metrics on ``http://host:port/metrics`` from a daemon thread."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=metrics.scrape_registry())
    log.info("worker metrics on http://%s:%d/metrics", host, port)
    return server


def mark_process_dead() -> None:
    """Multi-process mode: drop this process's live gauges when it exits."""
    path = multiproc_dir()
    if path:
        multiprocess.mark_process_dead(os.getpid(), path)
