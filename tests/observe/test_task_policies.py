"""A task's own policies (retry, timeout, queue, priority, dead-letter queue) hold however its job is sent:
the Task object, its name through `Client` and `SyncClient`, `POST /jobs`; its arguments are checked
against the signature its workers published; best-effort bulk gives a status per job."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tqflow.compiler import compile_file
from tqflow.runtime import catalog
from tqflow.runtime.client import Client
from tqflow.runtime.jobs import JobFailed
from tqflow.runtime.policies import NO_RETRY
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.store import lean
from tqflow.runtime.sync import SyncClient
from tqflow.runtime.validation import ArgumentError
from tqflow.runtime.worker import Worker

from .conftest import OBS_FLOWS
from cli_runner import tqc_on
from helpers import WorkerFactory

TASKS = load_tasks(["policy_tasks"], [OBS_FLOWS])
import policy_tasks as pt  # noqa: E402 - loaded from tests/observe/flows above


async def worker_ready(start_worker: WorkerFactory, redis: Redis, client: Client) -> Worker:
    """A worker on queue `pol`, once it has published its tasks (the first thing it does)."""
    worker = await start_worker(TASKS, queues=["pol"])
    for _ in range(500):
        if await redis.hexists(catalog.catalog_key(client.keys), "pol.flaky"):
            return worker
        await asyncio.sleep(0.01)
    raise AssertionError("the worker never published its tasks")


def key() -> str:
    return uuid.uuid4().hex


async def test_the_task_object_and_its_name_get_the_same_policies(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await worker_ready(start_worker, redis, client)
    by_object = await client.enqueue(pt.flaky, key=key())
    by_name = await client.enqueue("pol.flaky", key=key())
    for job_id in (by_object, by_name):
        assert lean.parse(job_id)[:2] == ("pol", 1), job_id  # queue `pol`, priority high
        assert await client.result(job_id, timeout=20) == 3  # retried twice: attempts=3
    # what the call sets wins over the task's own
    once = await client.enqueue("pol.flaky", key=key(), retry=NO_RETRY, priority="low")
    assert lean.parse(once)[:2] == ("pol", 3)
    with pytest.raises(JobFailed):
        await client.result(once, timeout=20)
    assert (await client.job(once)).attempt == 1


async def test_by_name_the_dead_letter_queue_and_timeout_are_the_tasks(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await worker_ready(start_worker, redis, client)
    doomed = await client.enqueue("pol.doomed", key=key())
    slow = await client.enqueue("pol.slow", seconds=30)
    with pytest.raises(JobFailed):
        await client.result(doomed, timeout=20)
    assert (await client.job(doomed)).attempt == 2
    assert [str(i) for i in await redis.zrange(client.keys.dead_letter("pol-dead"), 0, -1)] == [doomed]
    with pytest.raises(JobFailed, match=r"(?i)time"):
        await client.result(slow, timeout=20)


async def test_sync_client_by_name(
    client: Client, redis: Redis, redis_url: str, namespace: str, start_worker: WorkerFactory
) -> None:
    await worker_ready(start_worker, redis, client)

    def use() -> tuple[str, Any]:
        with SyncClient.from_url(redis_url, namespace) as sync:
            job_id = sync.enqueue("pol.flaky", key=key())
            return job_id, sync.result(job_id, timeout=20)

    job_id, result = await asyncio.to_thread(use)
    assert lean.parse(job_id)[:2] == ("pol", 1) and result == 3


async def test_post_jobs_by_name_gets_the_policies_and_checks_the_arguments(
    api: httpx.AsyncClient, client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await worker_ready(start_worker, redis, client)
    made = await api.post("/jobs", json={"task": "pol.flaky", "kwargs": {"key": key()}})
    assert made.status_code == 201, made.text
    assert await client.result(made.json()["id"], timeout=20) == 3
    job = (await api.get(f"/jobs/{made.json()['id']}")).json()
    assert (job["queue"], job["priority"], job["attempt"]) == ("pol", "high", 3)

    async def refused(body: dict[str, Any]) -> list[Any]:
        reply = await api.post("/jobs", json=body)
        assert reply.status_code == 422, reply.text
        return list(reply.json()["detail"][0]["loc"])

    assert await refused({"task": "pol.nobody", "kwargs": {}}) == ["body", "task"]
    assert await refused({"task": "pol.typed", "kwargs": {"count": 1}}) == ["body", "kwargs", "point"]
    wrong_type = {"task": "pol.typed", "kwargs": {"count": "many", "point": {"x": 1}}}
    assert await refused(wrong_type) == ["body", "kwargs", "count"]
    nested = {"task": "pol.typed", "kwargs": {"count": 1, "point": {"x": "left"}}}
    assert await refused(nested) == ["body", "kwargs", "point", "x"]
    listed = {"task": "pol.typed", "kwargs": {"count": 1, "point": {"x": 1}, "tags": ["a", 2]}}
    assert await refused(listed) == ["body", "kwargs", "tags", "1"]
    unknown = {"task": "pol.typed", "kwargs": {"count": 1, "point": {"x": 1}, "colour": "red"}}
    assert await refused(unknown) == ["body", "kwargs", "colour"]
    fine = {"task": "pol.typed", "kwargs": {"count": 1, "point": {"x": 2, "y": 3}, "day": "2026-12-01"}}
    typed = await api.post("/jobs", json=fine)
    assert typed.status_code == 201 and await client.result(typed.json()["id"], timeout=20) == 6
    listed_tasks = {t["name"]: t for t in (await api.get("/api/tasks")).json()}
    assert listed_tasks["pol.flaky"]["retry"]["attempts"] == 3
    assert listed_tasks["pol.doomed"]["dead_letter"] == "pol-dead"


async def test_a_name_no_worker_registered_is_refused_with_the_closest_one(
    api: httpx.AsyncClient, client: Client, redis_url: str, namespace: str
) -> None:
    await catalog.publish(client.redis, client.keys, TASKS)  # as a worker does when it starts
    typo = await asyncio.to_thread(tqc_on, redis_url, namespace, "jobs", "submit", "pol.flaki", "-a", "key=k")
    assert typo.returncode == 2, typo.stdout
    assert "no worker has registered a task `pol.flaki`; did you mean `pol.flaky`?" in typo.stderr
    assert "--unregistered" in typo.stderr
    assert await client.list_jobs(queue="default") == []  # nothing queued
    reply = await api.post("/jobs", json={"task": "pol.flaki", "kwargs": {"key": "k"}})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "task"]
    assert "did you mean `pol.flaky`?" in reply.json()["detail"][0]["msg"]
    # a name far from every published one gets no guess
    far = await asyncio.to_thread(tqc_on, redis_url, namespace, "jobs", "submit", "billing.charge")
    assert far.returncode == 2
    assert far.stderr.startswith("error: no worker has registered a task `billing.charge` (")
    # queued anyway on request (a worker for it may come later): the job waits on the default queue
    anyway = await asyncio.to_thread(
        tqc_on, redis_url, namespace, "jobs", "submit", "billing.charge", "--unregistered"
    )
    assert anyway.returncode == 0, anyway.stderr
    assert (await client.job(anyway.stdout.strip())).state == "queued"
    # a registered name goes through, with the task's published queue
    fine = await asyncio.to_thread(tqc_on, redis_url, namespace, "jobs", "submit", "pol.flaky", "-a", "key=k")
    assert fine.returncode == 0, fine.stderr
    assert (await client.job(fine.stdout.strip())).queue == "pol"


async def test_by_name_arguments_are_checked_and_best_effort_bulk_says_per_job(
    client: Client, redis: Redis, redis_url: str, namespace: str
) -> None:
    await catalog.publish(redis, client.keys, TASKS)
    with pytest.raises(ArgumentError, match="count"):
        await client.enqueue("pol.typed", count="many", point={"x": 1})
    items: list[Any] = [
        ("pol.typed", {"count": 1, "point": {"x": 1}}),
        ("pol.typed", {"count": "many", "point": {"x": 1}}),
        (pt.typed, {"count": 1}),
        ("pol.flaky", {"key": "k"}, {"priority": "urgent"}),
    ]
    results = await client.enqueue_many(items, atomic=False)
    assert [r.status for r in results] == ["ok", "error", "error", "error"]
    assert "count" in results[1].detail and "point" in results[2].detail and "urgent" in results[3].detail
    assert lean.parse(results[0])[:2] == ("pol", 2)
    with pytest.raises(ArgumentError):
        await client.enqueue_many(items, atomic=True)

    def sync_bulk() -> list[str]:
        with SyncClient.from_url(redis_url, namespace) as sync:
            return [r.status for r in sync.enqueue_many(items, atomic=False)]

    assert await asyncio.to_thread(sync_bulk) == ["ok", "error", "error", "error"]


async def test_a_worker_refuses_a_client_that_answers_bytes(redis_url: str, namespace: str) -> None:
    plain = Redis.from_url(redis_url)  # decode_responses=False: replies are bytes
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            Worker(plain, TASKS, namespace)
    finally:
        await plain.aclose()


def test_tasks_published_describe_their_parameters() -> None:
    described = catalog.describe(TASKS["pol.typed"])
    params = {p["name"]: p for p in described["params"]}
    assert params["count"]["required"] and not params["day"]["required"]
    assert params["point"]["schema"]["properties"]["x"]["type"] == "integer"
    published = catalog.Published.parse(__import__("json").dumps(described))
    assert published.problem({"count": 1, "point": {"x": 1}}) is None
    assert published.problem({"count": True, "point": {"x": 1}}) is not None  # a bool is not an int


def policies_plan() -> Any:
    result = compile_file(OBS_FLOWS / "policies.tqflow")
    assert result.plan is not None, [d.message for d in result.diagnostics]
    return result.plan


async def test_in_a_flow_the_tasks_policies_apply_unless_the_flow_sets_them(
    client: Client, redis: Redis, namespace: str, start_worker: WorkerFactory
) -> None:
    plan = policies_plan()
    owned = plan.flows["owned"]
    assert {job.queue for job in owned.jobs.values()} == {"pol"}  # @task(queue="pol"): the flow set none
    assert owned.jobs["doomed"].dead_letter == "pol-dead"
    await worker_ready(start_worker, redis, client)
    await client.deploy(plan)
    differences = {(d["flow"], d["job"], d["setting"]) for d in client.policy_differences}
    assert differences == {("overridden", "tried", "retry")}  # pol.flaky has no dead-letter queue

    run_id = await client.start_run("owned", {"key": f"{namespace}-flow"})
    info = await client.wait(run_id, 30)
    assert info.state == "failed"
    tried = await client.job(f"{run_id}.tried")
    doomed = await client.job(f"{run_id}.doomed")
    slow = await client.job(f"{run_id}.slow")
    assert (tried.state, tried.attempt) == ("succeeded", 3)  # the task's retry: 3 attempts
    assert (doomed.state, doomed.attempt) == ("dead", 2)
    dead_named = [str(i) for i in await redis.zrange(client.keys.dead_letter("pol-dead"), 0, -1)]
    assert f"{run_id}.doomed" in dead_named  # the task's dead-letter queue
    assert slow.state == "dead" and "time" in str(slow.error).lower()  # the task's 200 ms timeout

    over = await client.start_run("overridden", {"key": f"{namespace}-over"})
    assert (await client.wait(over, 30)).state == "succeeded"
    assert (await client.job(f"{over}.tried")).attempt == 3  # the flow's retry (4 attempts) was enough
