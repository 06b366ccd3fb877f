"""The REST routes that change things: submit, cancel (job, run), reprioritize, DLQ replay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.client import Client
from tqflow.runtime.task import Task

from .conftest import watch_plan
from helpers import WorkerFactory


@pytest.fixture
async def api(redis_url: str, namespace: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(redis_url, namespace))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http
    await app.state.services.close()


async def eventually(check: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_submit_a_job_and_replay_it_from_the_dead_letter_queue(
    api: httpx.AsyncClient, client: Client, start_worker: WorkerFactory, obs_tasks: dict[str, Task[Any, Any]]
) -> None:
    await start_worker(obs_tasks, queues=["observe"])
    made = await api.post(
        "/api/jobs", json={"task": "observe_tasks.join", "kwargs": {"a": 1, "b": 2}, "queue": "observe"}
    )
    assert made.status_code == 201, made.text
    assert await client.result(made.json()["id"], timeout=10) == 3
    job = (await api.get(f"/api/jobs/{made.json()['id']}")).json()
    assert job["state"] == "succeeded" and job["result"] == 3 and job["queue"] == "observe"

    key = uuid.uuid4().hex
    flaky = (
        await api.post(
            "/api/jobs", json={"task": "observe_tasks.flaky", "kwargs": {"key": key}, "queue": "observe"}
        )
    ).json()["id"]

    async def dead() -> bool:
        return (await api.get(f"/api/jobs/{flaky}")).json()["state"] == "dead"

    await eventually(dead)
    assert [d["job"]["id"] for d in (await api.get("/api/dlq")).json()["items"]] == [flaky]
    replayed = await api.post(f"/api/dlq/{flaky}/replay")
    assert replayed.status_code == 200 and list(replayed.json()["replayed"]) == [flaky]
    assert await client.result(flaky, timeout=10) == key
    assert (await api.get("/api/dlq")).json()["total"] == 0
    assert (await api.get("/api/dlq/names")).json() == []


async def test_reprioritize_and_cancel_a_queued_job(api: httpx.AsyncClient, redis: Redis) -> None:
    job_id = (
        await api.post(
            "/api/jobs",
            json={
                "task": "observe_tasks.join",
                "kwargs": {"a": 1, "b": 1},
                "queue": "idle",
                "priority": "low",
            },
        )
    ).json()["id"]
    moved = await api.post(f"/api/jobs/{job_id}/priority", json={"priority": "high"})
    assert moved.status_code == 200 and moved.json()["status"] == "moved"
    assert (await api.get(f"/api/jobs/{job_id}")).json()["priority"] == "high"
    (idle,) = [q for q in (await api.get("/api/queues")).json()["queues"] if q["queue"] == "idle"]
    assert [(lv["priority"], lv["waiting"]) for lv in idle["levels"] if lv["waiting"]] == [("high", 1)]

    cancelled = await api.post(f"/api/jobs/{job_id}/cancel")
    assert cancelled.json() == {"id": job_id, "status": "cancelled"}
    assert (await api.get(f"/api/jobs/{job_id}")).json()["state"] == "cancelled"
    late = await api.post(f"/api/jobs/{job_id}/priority", json={"priority": "low"})
    assert late.status_code == 409 and "cancelled" in late.json()["detail"]


async def test_cancel_a_run(api: httpx.AsyncClient, client: Client) -> None:
    await client.deploy(watch_plan())
    run_id = (await api.post("/api/runs", json={"flow": "watch", "params": {"ms": 10}})).json()["id"]
    reply = await api.post(f"/api/runs/{run_id}/cancel")
    assert reply.status_code == 200, reply.text
    run = (await api.get(f"/api/runs/{run_id}")).json()
    assert run["state"] == "cancelled" and set(run["counts"]) <= {"cancelled", "skipped"}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/jobs", {"task": "bad name", "kwargs": {}}, 422),
        ("/api/jobs", {"task": "t.x", "priority": "urgent"}, 422),
        ("/api/jobs", {"task": "t.x", "queue": "a{b}"}, 422),
        ("/api/jobs", {"task": "t.x", "delay_ms": -1}, 422),
        ("/api/jobs/nope/cancel", None, 404),
        ("/api/jobs/nope/priority", {"priority": "high"}, 404),
        ("/api/jobs/nope/priority", {"priority": "soon"}, 422),
        ("/api/runs/nope/cancel", None, 404),
        ("/api/dlq/replay", {"ids": ["a b"]}, 422),
        ("/api/dlq/x/replay?name=a%20b", None, 422),
    ],
)
async def test_bad_operations_get_a_4xx(api: httpx.AsyncClient, path: str, body: Any, status: int) -> None:
    reply = await api.post(path, json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["detail"]
