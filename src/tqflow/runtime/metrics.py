"""Prometheus metrics: counters and histograms from the worker's hooks, gauges read from Redis.

- `WorkerMetrics` is a `WorkerHooks`: attempts started and how they ended (by queue, priority, task),
  wait and run time histograms, jobs in flight, busy seconds (utilisation = rate(busy) / slots).
- `RedisCollector` serves gauges from a snapshot the Inspector takes: queue depth and running entries by
  queue and priority, age of the oldest waiting entry, delayed jobs, DLQ size, runs by flow and state.
- Several worker processes on one machine: each serves its own endpoint (`--metrics-port P` gives process i
  the port P+i), or, with `PROMETHEUS_MULTIPROC_DIR` set, one endpoint aggregates every process's files.

No job or run id is ever a label: label values are queues, priorities, task and flow names, states.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.views import QueuesOverview

JOB_LABELS = ("queue", "priority", "task")
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
OUTCOME_COUNTERS = {
    "succeeded": "succeeded",
    "retry": "retried",
    "dead": "dead_lettered",
    "skipped": "skipped",
    "stale": "stale",
}
RUNS_WINDOW = 1000  # runs by flow and state are counted over this many latest runs
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class WorkerMetrics:
    """Counters, histograms and gauges of one worker process; pass it as `Worker(..., hooks=[it])`."""

    def __init__(self, registry: CollectorRegistry | None = None, concurrency: int = 0) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry

        def counter(name: str, doc: str) -> Counter:
            return Counter(f"tqflow_jobs_{name}", doc, JOB_LABELS, registry=reg)

        self.started = counter("started", "Attempts started")
        self.outcomes = {
            key: counter(name, f"Attempts that ended {name.replace('_', ' ')}")
            for key, name in OUTCOME_COUNTERS.items()
        }
        self.failed = counter("failed", "Attempts that raised (retried or dead-lettered)")
        self.wait = Histogram(
            "tqflow_job_wait_seconds",
            "From enqueue (or due time) to start",
            ("queue", "priority"),
            buckets=WAIT_BUCKETS,
            registry=reg,
        )
        self.run_time = Histogram(
            "tqflow_job_run_seconds", "Attempt duration", ("queue", "task"), buckets=RUN_BUCKETS, registry=reg
        )
        self.in_flight = Gauge(
            "tqflow_worker_jobs_in_flight", "Attempts running now", registry=reg, multiprocess_mode="livesum"
        )
        self.slots = Gauge(
            "tqflow_worker_slots",
            "Jobs the worker may run at once",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.busy = Counter(
            "tqflow_worker_busy_seconds",
            "Seconds spent running attempts (utilisation = rate / slots)",
            registry=reg,
        )
        self.slots.set(concurrency)

    def attempt_started(self, event: AttemptEvent) -> None:
        self.started.labels(event.queue, event.priority, event.task).inc()
        self.wait.labels(event.queue, event.priority).observe(event.waited_ms / 1000)
        self.in_flight.inc()

    def attempt_finished(self, event: OutcomeEvent) -> None:
        attempt = event.attempt
        labels = (attempt.queue, attempt.priority, attempt.task)
        self.in_flight.dec()
        seconds = event.duration_ms / 1000
        self.busy.inc(seconds)
        self.run_time.labels(attempt.queue, attempt.task).observe(seconds)
        counter = self.outcomes.get(event.outcome)
        if counter is not None:
            counter.labels(*labels).inc()
        if event.outcome in ("retry", "dead") and event.error_type not in (
            None,
            "UnknownTask",
            "ArgumentError",
        ):
            self.failed.labels(*labels).inc()


@dataclass
class Snapshot:
    queues: QueuesOverview | None = None
    runs: Tally[tuple[str, str]] = field(default_factory=Tally)
    workers: Tally[str] = field(default_factory=Tally)
    enqueued: dict[tuple[str, str], int] = field(default_factory=dict)
    taken_ms: int = 0


class RedisCollector(Collector):
    """Gauges read from Redis. `refresh()` takes a snapshot; scrapes serve the latest one."""

    def __init__(self, inspector: Inspector) -> None:
        self.inspector = inspector
        self._snapshot = Snapshot()
        self._lock = Lock()

    async def refresh(self) -> None:
        overview = await self.inspector.queues()
        runs = await self.inspector.recent_runs(RUNS_WINDOW)
        workers = await self.inspector.workers()
        snapshot = Snapshot(
            queues=overview,
            runs=Tally((r.flow, r.state) for r in runs),
            workers=Tally(w.state for w in workers),
            enqueued=await self._enqueued(overview),
        )
        with self._lock:
            self._snapshot = snapshot

    async def _enqueued(self, overview: QueuesOverview) -> dict[tuple[str, str], int]:
        """Entries ever added per stream (Redis 7+ reports it; older servers leave it out)."""
        added: dict[tuple[str, str], int] = {}
        keys = self.inspector.keys
        for queue in overview.queues:
            for level in queue.levels:
                with contextlib.suppress(Exception):
                    info = await self.inspector.redis.xinfo_stream(keys.stream(queue.queue, level.level))
                    if "entries-added" in info:
                        added[(queue.queue, level.priority)] = int(info["entries-added"])
        return added

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = self._snapshot
        if snap.queues is None:
            return
        yield from self._queue_families(snap.queues)
        yield _gauge(
            "tqflow_jobs_delayed", "Jobs waiting for a delay or a retry", [], [((), snap.queues.delayed)]
        )
        yield _gauge("tqflow_dlq_size", "Jobs in the dead-letter queue", [], [((), snap.queues.dead)])
        yield _gauge(
            "tqflow_runs",
            f"Runs by flow and state, over the latest {RUNS_WINDOW} runs",
            ["flow", "state"],
            list(snap.runs.items()),
        )
        yield _gauge(
            "tqflow_workers", "Workers by state", ["state"], [((s,), n) for s, n in snap.workers.items()]
        )
        if snap.enqueued:
            family = GaugeMetricFamily(
                "tqflow_queue_enqueued",
                "Entries ever added to the stream (a counter kept by Redis)",
                labels=["queue", "priority"],
            )
            for (queue, priority), value in snap.enqueued.items():
                family.add_metric([queue, priority], value)
            yield family

    def _queue_families(self, overview: QueuesOverview) -> Iterator[Metric]:
        labels = ["queue", "priority"]
        levels = [lv for q in overview.queues for lv in q.levels]
        yield _gauge(
            "tqflow_queue_waiting",
            "Entries waiting for a worker",
            labels,
            [((lv.queue, lv.priority), lv.waiting) for lv in levels],
        )
        yield _gauge(
            "tqflow_queue_running",
            "Entries read and not yet acknowledged",
            labels,
            [((lv.queue, lv.priority), lv.running) for lv in levels],
        )
        yield _gauge(
            "tqflow_queue_oldest_age_seconds",
            "Age of the oldest waiting entry",
            labels,
            [((lv.queue, lv.priority), (lv.oldest_age_ms or 0) / 1000) for lv in levels],
        )


def _gauge(name: str, doc: str, labels: list[str], samples: list[tuple[Any, float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


async def refresh_loop(collector: RedisCollector, stop: asyncio.Event, every: float = 5.0) -> None:
    """Keep a worker's Redis gauges fresh; a failed refresh keeps the last snapshot."""
    while not stop.is_set():
        with contextlib.suppress(Exception):
            await collector.refresh()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def serving_registry(worker: WorkerMetrics, *extra: Collector) -> CollectorRegistry:
    """What an endpoint serves: this process's metrics, or every process's in multiprocess mode,
    plus `extra` collectors (the Redis gauges)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = worker.registry
    for collector in extra:
        registry.register(collector)
    return registry


def metrics_port(base: int, process_index: int) -> int:
    """Per-process endpoints: process i of a multi-process worker listens on base + i."""
    return base + process_index


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> Any:
    """Serve /metrics on a daemon thread; returns the server (call `.shutdown()` to stop it)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
