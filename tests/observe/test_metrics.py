"""Metrics scraped over HTTP and parsed with prometheus-client's parser while a flow runs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.metrics import RedisCollector, WorkerMetrics, metrics_port, serve, serving_registry
from tqflow.runtime.task import Task

from .conftest import watch_plan
from helpers import WorkerFactory


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(parsed: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_while_a_flow_runs_and_after(
    client: Client,
    redis: Redis,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    await client.deploy(watch_plan())
    metrics = WorkerMetrics(concurrency=2)
    collector = RedisCollector(Inspector(redis, namespace))
    server = serve(serving_registry(metrics, collector), port=0)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        runs = [await client.start_run("watch", {"ms": "500"}) for _ in range(3)]
        await start_worker(obs_tasks, hooks=[metrics], queues=["observe"], concurrency=2)
        async with httpx.AsyncClient() as http:
            for _ in range(100):  # until both slots are busy (the worker may take a moment to start)
                await collector.refresh()
                during = samples((await http.get(url)).text)
                if value(during, "tqflow_queue_running", queue="observe", priority="normal") == 2:
                    break
                await asyncio.sleep(0.02)
            # Mid-run: two attempts in flight, one root still waiting at normal priority, runs running.
            assert value(during, "tqflow_worker_jobs_in_flight") == 2
            assert value(during, "tqflow_worker_slots") == 2
            assert value(during, "tqflow_queue_waiting", queue="observe", priority="normal") == 1
            assert value(during, "tqflow_queue_running", queue="observe", priority="normal") == 2
            assert value(during, "tqflow_runs", flow="watch", state="running") == 3
            for run_id in runs:
                assert (await client.wait(run_id, 30)).state == "succeeded"
            await collector.refresh()
            after = samples((await http.get(url)).text)
    finally:
        server.shutdown()
    task = "observe_tasks.pause"
    assert value(after, "tqflow_jobs_started_total", queue="observe", priority="normal", task=task) == 3
    assert value(after, "tqflow_jobs_succeeded_total", queue="observe", priority="high", task=task) == 3
    assert value(after, "tqflow_jobs_succeeded_total", queue="observe", priority="low", task=task) == 3
    assert value(after, "tqflow_job_run_seconds_count", queue="observe", task=task) == 9
    assert (
        value(after, "tqflow_job_wait_seconds_count", queue="observe", priority="normal") == 6
    )  # pause + join
    assert value(after, "tqflow_worker_busy_seconds_total") >= 9 * 0.5
    assert value(after, "tqflow_worker_jobs_in_flight") == 0
    assert value(after, "tqflow_runs", flow="watch", state="succeeded") == 3
    assert value(after, "tqflow_queue_waiting", queue="observe", priority="normal") == 0
    # No job or run id appears as a label value anywhere.
    label_values = {v for (_, labels) in after for _, v in labels}
    assert not any(run_id in v for run_id in runs for v in label_values)


async def test_dead_letters_and_failures_are_counted(
    client: Client,
    redis: Redis,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    await client.deploy(watch_plan())
    metrics = WorkerMetrics(concurrency=4)
    collector = RedisCollector(Inspector(redis, namespace))
    await start_worker(obs_tasks, hooks=[metrics], queues=["observe"])
    assert (await client.wait(await client.start_run("broken"), 20)).state == "failed"
    await collector.refresh()
    from prometheus_client import generate_latest

    parsed = samples(generate_latest(serving_registry(metrics, collector)).decode())
    labels = {"queue": "observe", "priority": "normal", "task": "observe_tasks.fail"}
    assert value(parsed, "tqflow_jobs_retried_total", **labels) == 1
    assert value(parsed, "tqflow_jobs_dead_lettered_total", **labels) == 1
    assert value(parsed, "tqflow_jobs_failed_total", **labels) == 2
    assert value(parsed, "tqflow_dlq_size", dlq="default") == 1
    assert value(parsed, "tqflow_runs", flow="broken", state="failed") == 1


def test_per_process_ports() -> None:
    assert [metrics_port(9100, i) for i in range(3)] == [9100, 9101, 9102]
