"""What `tqrun worker` adds around a worker: metrics, job logs, attempt history, alerts.

One call builds the hooks to pass to `Worker(..., hooks=...)` and the background tasks to run beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from tqflow.runtime.alerts import AlertMonitor, AlertSettings
from tqflow.runtime.attempts import TTL_S, AttemptRecorder
from tqflow.runtime.hooks import WorkerHooks
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.logging import JobLogHooks
from tqflow.runtime.metrics import (
    RedisCollector,
    RedisJobCounters,
    WorkerMetrics,
    metrics_port,
    refresh_loop,
    serve,
    serving_registry,
)


@dataclass
class WorkerObservability:
    hooks: list[WorkerHooks]
    background: list[Any] = field(default_factory=list)  # coroutine functions taking the stop event
    servers: list[Any] = field(default_factory=list)

    async def run_beside(self, work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
        """Run `work` (the worker) with the background tasks; stop them when it returns."""
        helpers = [asyncio.create_task(job(stop)) for job in self.background]
        try:
            await work
        finally:
            stop.set()
            await asyncio.gather(*helpers, return_exceptions=True)
            for hook in self.hooks:  # write what hooks still buffer (the attempt history) before exiting
                flush = getattr(hook, "close", None) or getattr(hook, "flush", None)
                if flush is not None:
                    await flush()
            for server in self.servers:
                with contextlib.suppress(Exception):
                    server.shutdown()


def for_worker(
    redis: Redis,
    namespace: str,
    concurrency: int,
    *,
    metrics_port_base: int | None = None,
    metrics_host: str = "127.0.0.1",
    process_index: int = 0,
    alerts: AlertSettings | None = None,
    tasks: Collection[str] | None = None,
    history_ttl_s: int = TTL_S,
) -> WorkerObservability:
    counters = RedisJobCounters(redis, namespace, tasks)  # the deployment's counts, for the API's /metrics
    recorder = AttemptRecorder(redis, namespace, ttl_s=history_ttl_s)
    hooks: list[WorkerHooks] = [JobLogHooks(), recorder, counters]
    observability = WorkerObservability(hooks)
    observability.background.append(counters.run)
    if alerts is not None and process_index == 0:  # one monitor per machine keeps its rate limits whole
        observability.background.append(AlertMonitor(redis, namespace, alerts).run)
    if metrics_port_base is not None:
        metrics = WorkerMetrics(concurrency=concurrency, tasks=tasks)
        hooks.append(metrics)
        extra = []
        if process_index == 0:  # one process per machine serves the gauges read from Redis
            collector = RedisCollector(Inspector(redis, namespace))
            extra.append(collector)
            observability.background.append(lambda stop: refresh_loop(collector, stop))
        port = metrics_port(metrics_port_base, process_index)
        observability.servers.append(serve(serving_registry(metrics, *extra), port, metrics_host))
    return observability
