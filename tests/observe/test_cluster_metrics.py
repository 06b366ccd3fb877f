"""The metric fixes: DLQ size by dead-letter queue, the leader counted alive, the stream counter as a
`_total`, the deployment's job counters and histograms on the API's `/metrics` (counted in Redis by every
worker), API request metrics, and task labels that stay bounded whatever names producers send."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from redis.asyncio import Redis

from tqflow.runtime import catalog
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.client import Client
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.metrics import RedisJobCounters, TaskLabels, WorkerMetrics
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.task import Task

from .conftest import OBS_FLOWS
from .test_metrics import samples, value
from helpers import WorkerFactory

POLICY_TASKS = load_tasks(["policy_tasks"], [OBS_FLOWS])


async def test_dlq_by_name_leader_alive_counters_and_bounded_task_labels(
    client: Client,
    redis: Redis,
    redis_url: str,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    tasks = {**POLICY_TASKS, **obs_tasks}
    counters = RedisJobCounters(redis, namespace, tasks)
    local = WorkerMetrics(concurrency=4, tasks=tasks)
    await catalog.publish(redis, client.keys, tasks)  # what the worker does first, done before sending
    await start_worker(tasks, hooks=[counters, local], queues=["pol"])
    doomed = await client.enqueue("pol.doomed", key="m")  # 2 attempts, then the named DLQ pol-dead
    failing = await client.enqueue("observe_tasks.fail", message="no", queue="pol")  # the default DLQ
    unknown = [await client.enqueue(f"made.up{i}", queue="pol") for i in range(3)]  # no worker has them
    for job_id in [doomed, failing, *unknown]:
        await client.waiter.wait(job_id, 20)
    inspector = Inspector(redis, namespace)
    for _ in range(300):  # the worker takes the leadership within a few heartbeats
        if any(w.state == "leader" for w in await inspector.workers()):
            break
        await asyncio.sleep(0.05)
    await counters.flush()

    app = create_app(ApiSettings(redis_url, namespace))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        assert (await http.get("/api/queues")).status_code == 200
        parsed = samples((await http.get("/metrics")).text)
    await app.state.services.close()

    assert value(parsed, "tqflow_dlq_size", dlq="pol-dead") == 1
    assert value(parsed, "tqflow_dlq_size", dlq="default") == 4
    assert value(parsed, "tqflow_workers", state="alive") == 1  # the leader, counted alive
    assert value(parsed, "tqflow_workers_leader") == 1
    enqueued = value(parsed, "tqflow_queue_enqueued_total", queue="pol", priority="normal")
    assert enqueued == 6  # 5 jobs and the retry of pol.doomed
    doomed_labels = {"queue": "pol", "priority": "normal", "task": "pol.doomed"}
    assert value(parsed, "tqflow_cluster_jobs_started_total", **doomed_labels) == 2
    assert value(parsed, "tqflow_cluster_jobs_retried_total", **doomed_labels) == 1
    assert value(parsed, "tqflow_cluster_jobs_dead_lettered_total", **doomed_labels) == 1
    unknown_labels = {"queue": "pol", "priority": "normal", "task": "unknown"}
    assert value(parsed, "tqflow_cluster_jobs_dead_lettered_total", **unknown_labels) == 3
    assert value(parsed, "tqflow_cluster_job_run_seconds_count", queue="pol", task="pol.doomed") == 2
    assert value(parsed, "tqflow_cluster_job_wait_seconds_count", queue="pol", priority="normal") == 6
    assert value(parsed, "tqflow_api_requests_total", method="GET", route="/api/queues", status="200") == 1
    label_values = {v for (_, labels) in parsed for _, v in labels}
    assert not any(v.startswith("made.up") for v in label_values)  # producers' names are no labels

    from prometheus_client import generate_latest

    mine = samples(generate_latest(local.registry).decode())
    assert not any(v.startswith("made.up") for (_, labels) in mine for _, v in labels)
    assert value(mine, "tqflow_jobs_dead_lettered_total", **unknown_labels) == 3


def test_task_labels_are_bounded() -> None:
    labels = TaskLabels(limit=2)
    assert [labels.of(n) for n in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a", "other"]
