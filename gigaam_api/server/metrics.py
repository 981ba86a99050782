"""What /metrics exposes, in Prometheus' text format (prometheus-client), one registry per app.

Counted as things happen: HTTP requests by route template, method and status (499 when the
client left first), jobs by outcome, audio seconds transcribed, the real-time factor of
finished jobs. Read at scrape time from the running server (`Snapshot`): the queue, the model
(state, load time, engine, precision, device), whether the server is stopping, free space in
the temp dir, the result cache. The process' own RSS, open files and CPU come from
prometheus-client's process collector. No ids, no text, no paths: /metrics is public like
/health. No HTTP here (routes/metrics.py serves it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from gigaam_api import __version__
from gigaam_api.server.jobs import Job

CONTENT_TYPE = CONTENT_TYPE_LATEST
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
"""Processing seconds per audio second: 0.05 is 20x faster than real time."""


@dataclass(frozen=True)
class Snapshot:
    """The running server's state, read at scrape time."""

    model_status: str
    """loading, ok or error."""
    model: str
    """The loaded model's id ("" until it is loaded)."""
    engine: str | None
    precision: str | None
    device: str | None
    load_s: float | None
    stopping: bool
    queue_active: int
    queue_max: int
    queue_waiting: int
    running: int
    temp_free_bytes: int | None
    cache_entries: int | None
    cache_bytes: int | None


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], Snapshot]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        state = self._read()
        yield _gauge(
            "gigaam_queue_active",
            "Admitted requests: uploading, queued or running.",
            state.queue_active,
        )
        yield _gauge(
            "gigaam_queue_waiting", "Jobs queued behind the running one.", state.queue_waiting
        )
        yield _gauge("gigaam_queue_running", "Jobs running now (0 or 1).", state.running)
        yield _gauge("gigaam_queue_max", "MAX_QUEUE: admitted requests allowed.", state.queue_max)
        yield _gauge(
            "gigaam_model_loaded",
            "1 once the model is loaded.",
            1 if state.model_status == "ok" else 0,
        )
        yield _gauge(
            "gigaam_ready",
            "1 while the server takes work (as GET /ready).",
            1 if state.model_status == "ok" and not state.stopping else 0,
        )
        yield _gauge("gigaam_stopping", "1 once a stop signal arrived.", 1 if state.stopping else 0)
        if state.load_s is not None:
            yield _gauge(
                "gigaam_model_load_seconds",
                "Seconds from start to the model being ready (a first download included).",
                state.load_s,
            )
        info = InfoMetricFamily("gigaam_model", "The model in use and how it runs.")
        info.add_metric(
            [],
            {
                "model": state.model,
                "status": state.model_status,
                "engine": state.engine or "",
                "precision": state.precision or "",
                "device": state.device or "",
                "version": __version__,
            },
        )
        yield info
        if state.temp_free_bytes is not None:
            yield _gauge(
                "gigaam_temp_free_bytes",
                "Free space where uploads and decoded audio wait (TEMP_DIR).",
                state.temp_free_bytes,
            )
        if state.cache_entries is not None and state.cache_bytes is not None:
            yield _gauge(
                "gigaam_cache_entries", "Transcripts in the result cache.", state.cache_entries
            )
            yield _gauge("gigaam_cache_bytes", "Disk the result cache uses.", state.cache_bytes)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class Metrics:
    """The app's metrics; `track` connects the state read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gigaam_http_requests",
            "HTTP requests by route template, method and status (499: the client left first).",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "gigaam_jobs",
            "Transcription jobs that ended, by outcome (done, failed, cancelled).",
            ["status"],
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "gigaam_audio_seconds",
            "Audio seconds transcribed (settled seconds of every job that ran, finished or not).",
            registry=self.registry,
        )
        self.rtf = Histogram(
            "gigaam_rtf",
            "Real-time factor of finished jobs: processing seconds per audio second.",
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def track(self, read: Callable[[], Snapshot]) -> None:
        """Report the server's state, read by `read` at every scrape."""
        self.registry.register(_StateCollector(read))

    def observe_request(self, route: str, method: str, status: int) -> None:
        self.requests.labels(route, method, str(status)).inc()

    def observe_job(self, job: Job) -> None:
        """A job this server ran (or queued) ended."""
        self.jobs.labels(job.status).inc()
        if job.result is not None:
            self.audio_seconds.inc(job.result.duration_s)
            if job.result.duration_s > 0:
                self.rtf.observe(job.result.processing_s / job.result.duration_s)
        else:
            self.audio_seconds.inc(job.progress().processed_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
