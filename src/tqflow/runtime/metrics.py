"""Prometheus metrics: counters and histograms from the worker's hooks, gauges read from Redis.

- `WorkerMetrics` is a `WorkerHooks`: attempts started and how they ended (by queue, priority, task),
  wait and run time histograms, jobs in flight, busy seconds (utilisation = rate(busy) / slots).
- `RedisCollector` serves gauges from a snapshot the Inspector takes: queue depth and running entries by
  queue and priority, age of the oldest waiting entry, delayed jobs, DLQ size, runs by flow and state.
- Several worker processes on one machine: each serves its own endpoint (`--metrics-port P` gives process i
  the port P+i), or, with `PROMETHEUS_MULTIPROC_DIR` set, one endpoint aggregates every process's files.

- `RedisJobCounters` is a `WorkerHooks` too (every worker has it): the same counts and histograms, added
  up in one Redis hash per namespace (`{ns}:stats:jobs`, one pipeline of HINCRBYs a second), so the API's
  `/metrics` serves them for the whole deployment as `tqflow_cluster_jobs_*_total` and
  `tqflow_cluster_job_{wait,run}_seconds`.

No job or run id is ever a label: label values are queues, priorities, task and flow names, states. A task
label is a task the worker runs (a job of a task it does not know counts as `unknown`), and one process
gives at most `MAX_TASK_LABELS` task names their own label (the rest count as `other`): series stay bounded
whatever names producers send.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
from collections import Counter as Tally
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.limit_inspect import LimitsOverview
from tqflow.runtime.store.keys import Keys
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
MAX_TASK_LABELS = 500
UNKNOWN_TASK_ERRORS = ("UnknownTask",)
DEFAULT_DLQ_LABEL = "default"


class TaskLabels:
    """Bounded task label values: the first MAX_TASK_LABELS names keep theirs, any later one is `other`;
    a job whose task the worker does not have is `unknown` (its name came from a producer, not from code)."""

    def __init__(self, limit: int = MAX_TASK_LABELS) -> None:
        self.limit = limit
        self.seen: set[str] = set()
        self.unknown: set[str] = set()  # job ids whose task was unknown, until they finish

    def of(self, task: str) -> str:
        if task in self.seen:
            return task
        if len(self.seen) < self.limit:
            self.seen.add(task)
            return task
        return "other"


def _labels(buckets: tuple[float, ...]) -> tuple[str, ...]:
    return (*(repr(float(bound)) for bound in buckets), "+Inf")


WAIT_LABELS, RUN_LABELS = _labels(WAIT_BUCKETS), _labels(RUN_BUCKETS)
# the first buckets' bounds in ms: an integer ms at or below one is in bucket 0 (no bisect a job)
FIRST_WAIT_MS, FIRST_RUN_MS = WAIT_BUCKETS[0] * 1000, RUN_BUCKETS[0] * 1000


class WorkerMetrics:
    """Counters, histograms and gauges of one worker process; pass it as `Worker(..., hooks=[it])`."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        concurrency: int = 0,
        tasks: Collection[str] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.tasks = set(tasks) if tasks is not None else None  # the worker's tasks: others are `unknown`
        self.labels = TaskLabels()
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

    def _task(self, task: str) -> str:
        if self.tasks is not None and task not in self.tasks:
            return "unknown"
        return self.labels.of(task)

    def attempt_started(self, event: AttemptEvent) -> None:
        self.started.labels(event.queue, event.priority, self._task(event.task)).inc()
        self.wait.labels(event.queue, event.priority).observe(event.waited_ms / 1000)
        self.in_flight.inc()

    def attempt_finished(self, event: OutcomeEvent) -> None:
        attempt = event.attempt
        task = "unknown" if event.error_type in UNKNOWN_TASK_ERRORS else self._task(attempt.task)
        labels = (attempt.queue, attempt.priority, task)
        self.in_flight.dec()
        seconds = event.duration_ms / 1000
        self.busy.inc(seconds)
        self.run_time.labels(attempt.queue, task).observe(seconds)
        counter = self.outcomes.get(event.outcome)
        if counter is not None:
            counter.labels(*labels).inc()
        if event.outcome in ("retry", "dead") and event.error_type not in (
            None,
            "UnknownTask",
            "ArgumentError",
        ):
            self.failed.labels(*labels).inc()


class RedisJobCounters:
    """A worker hook that adds the worker's counts to `{ns}:stats:jobs` in Redis (one pipeline of HINCRBY
    a second, and at shutdown): fields `started|QUEUE|PRIORITY|TASK`, `<outcome>|…`, and the histograms
    `wait|QUEUE|PRIORITY|<le>` / `run|QUEUE|TASK|<le>` with their `_sum` fields (HINCRBYFLOAT).

    A job adds one to one tally per event, by what its fields need (queue, priority, task, outcome, the
    histogram bucket) and its milliseconds to one sum; the fields are made from them at the flush, task
    labels included (`TaskLabels`, in the order the tasks were first seen)."""

    def __init__(self, redis: Any, namespace: str, tasks: Collection[str] | None = None) -> None:
        self.redis = redis
        self.key = Keys(namespace).stats_jobs
        self.tasks = set(tasks) if tasks is not None else None
        self.labels = TaskLabels()
        self._started: Tally[tuple[str, str, str, int]] = Tally()  # queue, priority, task, wait bucket
        self._ended: Tally[tuple[str, str, str, str, bool, int]] = Tally()  # … outcome, unknown, run bucket
        # ms, by the same keys (one tuple a job for both), summed by queue and priority / task at the flush
        self._waited: dict[tuple[str, str, str, int], int] = {}
        self._ran: dict[tuple[str, str, str, str, bool, int], int] = {}

    def _task(self, task: str, unknown: bool = False) -> str:
        if unknown or (self.tasks is not None and task not in self.tasks):
            return "unknown"
        return self.labels.of(task)

    def attempt_started(self, event: AttemptEvent) -> None:
        ms = event.waited_ms
        bucket = 0 if ms <= FIRST_WAIT_MS else bisect.bisect_left(WAIT_BUCKETS, ms / 1000)
        key = (event.queue, event.priority, event.task, bucket)
        started, waited = self._started, self._waited
        started[key] = started.get(key, 0) + 1
        waited[key] = waited.get(key, 0) + ms

    def attempt_finished(self, event: OutcomeEvent) -> None:
        attempt, ms = event.attempt, event.duration_ms
        unknown = event.error_type in UNKNOWN_TASK_ERRORS
        bucket = 0 if ms <= FIRST_RUN_MS else bisect.bisect_left(RUN_BUCKETS, ms / 1000)
        key = (event.outcome, attempt.queue, attempt.priority, attempt.task, unknown, bucket)
        ended, ran = self._ended, self._ran
        ended[key] = ended.get(key, 0) + 1
        ran[key] = ran.get(key, 0) + ms

    @property
    def counts(self) -> Tally[str]:
        """The HINCRBY fields and amounts of what was counted since the last flush."""
        counts: Tally[str] = Tally()
        for (queue, priority, task, bucket), n in self._started.items():
            counts[f"started|{queue}|{priority}|{self._task(task)}"] += n
            counts[f"wait|{queue}|{priority}|{WAIT_LABELS[bucket]}"] += n
        for (outcome, queue, priority, task, unknown, bucket), n in self._ended.items():
            label = self._task(task, unknown)
            name = OUTCOME_COUNTERS.get(outcome)
            if name is not None:
                counts[f"{name}|{queue}|{priority}|{label}"] += n
            counts[f"run|{queue}|{label}|{RUN_LABELS[bucket]}"] += n
        return counts

    @property
    def sums(self) -> dict[str, float]:
        """The HINCRBYFLOAT fields and seconds since the last flush."""
        waited: dict[tuple[str, str], int] = {}
        for (queue, priority, _, _), ms in self._waited.items():
            waited[queue, priority] = waited.get((queue, priority), 0) + ms
        ran: dict[tuple[str, str, bool], int] = {}
        for (_, queue, _, task, unknown, _), ms in self._ran.items():
            ran[queue, task, unknown] = ran.get((queue, task, unknown), 0) + ms
        sums: dict[str, float] = {}
        for (queue, priority), ms in waited.items():
            sums[f"wait_sum|{queue}|{priority}"] = ms / 1000
        for (queue, task, unknown), ms in ran.items():
            where = f"run_sum|{queue}|{self._task(task, unknown)}"
            sums[where] = sums.get(where, 0.0) + ms / 1000
        return sums

    def _forget(self) -> None:
        self._started, self._ended, self._waited, self._ran = Tally(), Tally(), {}, {}

    async def flush(self) -> None:
        if not self._started and not self._ended:
            return
        counts, sums = self.counts, self.sums
        kept = (self._started, self._ended, self._waited, self._ran)
        self._forget()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for name, n in counts.items():
                    pipe.hincrby(self.key, name, n)
                for name, value in sums.items():
                    pipe.hincrbyfloat(self.key, name, value)
                await pipe.execute()
        except Exception:  # Redis away: keep the counts for the next flush
            started, ended, waited, ran = kept
            self._started.update(started)
            self._ended.update(ended)
            for queue_priority, ms in waited.items():
                self._waited[queue_priority] = self._waited.get(queue_priority, 0) + ms
            for where, ms in ran.items():
                self._ran[where] = self._ran.get(where, 0) + ms

    async def run(self, stop: asyncio.Event, every: float = 1.0) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            await self.flush()


@dataclass
class Snapshot:
    queues: QueuesOverview | None = None
    runs: Tally[tuple[str, str]] = field(default_factory=Tally)
    workers: Tally[str] = field(default_factory=Tally)
    enqueued: dict[tuple[str, str], int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)  # by dead-letter queue (`default` for the default)
    leader: bool = False
    jobs: dict[str, str] = field(default_factory=dict)  # {ns}:stats:jobs
    limits: LimitsOverview | None = None
    taken_ms: int = 0


class RedisCollector(Collector):
    """Gauges read from Redis. `refresh()` takes a snapshot; scrapes serve the latest one."""

    def __init__(self, inspector: Inspector, jobs: bool = False) -> None:
        self.inspector = inspector
        self.jobs = jobs  # also serve the deployment's job counters (`{ns}:stats:jobs`): the API does
        self._snapshot = Snapshot()
        self._lock = Lock()

    async def refresh(self) -> None:
        overview = await self.inspector.queues()
        runs = await self.inspector.recent_runs(RUNS_WINDOW)
        workers = await self.inspector.workers()
        # the leader is alive too: `alive` counts it, `tqflow_workers_leader` says there is one
        states = Tally("alive" if w.state == "leader" else w.state for w in workers)
        snapshot = Snapshot(
            queues=overview,
            runs=Tally((r.flow, r.state) for r in runs),
            workers=states,
            enqueued=await self._enqueued(overview),
            dead=await self._dead(),
            leader=any(w.state == "leader" for w in workers),
            jobs=await self.inspector.redis.hgetall(self.inspector.keys.stats_jobs) if self.jobs else {},
            limits=await self.inspector.limits(),
        )
        with self._lock:
            self._snapshot = snapshot

    async def _dead(self) -> dict[str, int]:
        names = await self.inspector.dlq_names()
        found = dict.fromkeys([DEFAULT_DLQ_LABEL, *names], 0)
        for part in await self.inspector.parts():  # summed over the namespace's partitions
            keys = part.keys
            async with part.redis.pipeline(transaction=False) as pipe:
                pipe.zcard(keys.dead_letter(None))
                for name in names:
                    pipe.zcard(keys.dead_letter(name))
                sizes = await pipe.execute()
            for label, size in zip([DEFAULT_DLQ_LABEL, *names], sizes, strict=True):
                found[label] += int(size)
        return found

    async def _enqueued(self, overview: QueuesOverview) -> dict[tuple[str, str], int]:
        """Entries ever added per stream (Redis 7+ reports it; older servers leave it out)."""
        added: dict[tuple[str, str], int] = {}
        for part in await self.inspector.parts():  # summed over the namespace's partitions
            for queue in overview.queues:
                for level in queue.levels:
                    with contextlib.suppress(Exception):
                        info = await part.redis.xinfo_stream(part.keys.stream(queue.queue, level.level))
                        if "entries-added" in info:
                            where = (queue.queue, level.priority)
                            added[where] = added.get(where, 0) + int(info["entries-added"])
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
        yield _gauge(
            "tqflow_dlq_size",
            "Jobs in a dead-letter queue (`default`, or a named one)",
            ["dlq"],
            [((name,), n) for name, n in (snap.dead or {DEFAULT_DLQ_LABEL: snap.queues.dead}).items()],
        )
        yield _gauge("tqflow_workers_leader", "1 when a worker holds the leadership", [], [((), snap.leader)])
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
            family = CounterMetricFamily(
                "tqflow_queue_enqueued",  # served as tqflow_queue_enqueued_total
                "Entries ever added to the stream (a counter kept by Redis)",
                labels=["queue", "priority"],
            )
            for (queue, priority), value in snap.enqueued.items():
                family.add_metric([queue, priority], value)
            yield family
        if snap.jobs:
            yield from _job_families(snap.jobs)
        if snap.limits is not None:
            yield from _limit_families(snap.limits)

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


def _job_families(fields: dict[str, str]) -> Iterator[Metric]:
    """The deployment's job counters and histograms from `{ns}:stats:jobs` (see RedisJobCounters)."""
    counters: dict[str, CounterMetricFamily] = {}
    hist: dict[str, dict[tuple[str, str], dict[str, float]]] = {"wait": {}, "run": {}}
    sums: dict[str, dict[tuple[str, str], float]] = {"wait": {}, "run": {}}
    for name, raw in fields.items():
        parts = str(name).split("|")
        kind = parts[0]
        try:
            value = float(raw)
        except ValueError:
            continue
        if kind in ("wait", "run") and len(parts) == 4:
            hist[kind].setdefault((parts[1], parts[2]), {})[parts[3]] = value
        elif kind in ("wait_sum", "run_sum") and len(parts) == 3:
            sums[kind[:-4]][(parts[1], parts[2])] = value
        elif len(parts) == 4 and (kind == "started" or kind in OUTCOME_COUNTERS.values()):
            family = counters.get(kind)
            if family is None:
                family = counters[kind] = CounterMetricFamily(
                    f"tqflow_cluster_jobs_{kind}",
                    f"Attempts {kind.replace('_', ' ')}, every worker of the deployment (counted in Redis)",
                    labels=list(JOB_LABELS),
                )
            family.add_metric(parts[1:], value)
    yield from counters.values()
    for kind, labels, buckets, doc in (
        ("wait", ["queue", "priority"], WAIT_BUCKETS, "From enqueue (or due time) to start"),
        ("run", ["queue", "task"], RUN_BUCKETS, "Attempt duration"),
    ):
        histogram = HistogramMetricFamily(
            f"tqflow_cluster_job_{kind}_seconds", f"{doc}, every worker of the deployment", labels=labels
        )
        for key, counts in hist[kind].items():
            running, cumulative = 0.0, []
            for bound in [*(repr(float(b)) for b in buckets), "+Inf"]:
                running += counts.get(bound, 0.0)
                cumulative.append((bound, running))
            histogram.add_metric(list(key), cumulative, sum_value=sums[kind].get(key, 0.0))
        yield histogram


def _limit_families(overview: LimitsOverview) -> Iterator[Metric]:
    """By limiter name only: a limiter's keys (customers, tenants) are unbounded, so they are summed."""
    limiters = overview.limiters
    yield _gauge(
        "tqflow_limit_waiting",
        "Jobs waiting for a rate or concurrency limiter (summed over its keys)",
        ["limiter", "kind"],
        [((lim.name, lim.kind), lim.waiting) for lim in limiters],
    )
    yield _gauge(
        "tqflow_limit_in_use",
        "Slots held (concurrency) or tokens taken and not yet refilled (rate), summed over its keys",
        ["limiter", "kind"],
        [((lim.name, lim.kind), lim.in_use) for lim in limiters],
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
