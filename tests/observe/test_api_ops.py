"""The REST routes that change things: submit, cancel (job, run), reprioritize, DLQ replay."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tqflow.runtime import catalog
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.attempts import AttemptRecorder
from tqflow.runtime.client import Client
from tqflow.runtime.task import Task

from .conftest import watch_plan
from helpers import WorkerFactory


async def eventually(check: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_submit_a_job_and_replay_it_from_the_dead_letter_queue(
    api: httpx.AsyncClient, client: Client, start_worker: WorkerFactory, obs_tasks: dict[str, Task[Any, Any]]
) -> None:
    await start_worker(obs_tasks, queues=["observe"])
    await catalog.publish(client.redis, client.keys, obs_tasks)  # what the worker does as it starts
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


async def test_reprioritize_and_cancel_a_queued_job(
    api: httpx.AsyncClient, client: Client, obs_tasks: dict[str, Task[Any, Any]]
) -> None:
    await catalog.publish(client.redis, client.keys, obs_tasks)
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


MALFORMED = "default.2.99999999999999999999999-0"  # a lean id whose entry id is not two 64-bit numbers


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/jobs/{MALFORMED}", None),
        ("POST", f"/api/jobs/{MALFORMED}/priority", {"priority": "high"}),
        ("POST", f"/api/jobs/{MALFORMED}/cancel", None),
        ("GET", f"/jobs/{MALFORMED}", None),
        ("DELETE", f"/jobs/{MALFORMED}", None),
        ("PUT", f"/jobs/{MALFORMED}/priority", {"priority": "high"}),
        ("POST", f"/api/dlq/{MALFORMED}/replay", None),
        ("POST", "/api/dlq/replay", {"ids": [MALFORMED]}),
        ("GET", "/api/jobs/default.2.18446744073709551616-0", None),
        ("GET", "/api/jobs/default.2.1-18446744073709551616", None),
    ],
)
async def test_a_malformed_job_id_is_a_422_not_a_500(
    api: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    reply = await api.request(method, path, json=body)
    assert reply.status_code == 422, reply.text


async def test_the_largest_entry_id_is_well_formed(api: httpx.AsyncClient) -> None:
    biggest = "default.2.18446744073709551615-18446744073709551615"
    assert (await api.get(f"/api/jobs/{biggest}")).status_code == 404


async def test_the_specification_routes(
    api: httpx.AsyncClient, client: Client, obs_tasks: dict[str, Task[Any, Any]]
) -> None:
    await catalog.publish(client.redis, client.keys, obs_tasks)
    paths = (await api.get("/openapi.json")).json()["paths"]
    for path, method in [
        ("/jobs", "post"),
        ("/jobs/{job_id}", "get"),
        ("/jobs/{job_id}", "delete"),
        ("/jobs/{job_id}/priority", "put"),
        ("/stats", "get"),
        ("/workers", "get"),
        ("/dlq", "get"),
        ("/health", "get"),
        ("/api/jobs/{job_id}", "get"),
    ]:
        assert method in paths.get(path, {}), (path, method)
    made = await api.post(
        "/jobs", json={"task": "observe_tasks.join", "kwargs": {"a": 1, "b": 2}, "queue": "idle"}
    )
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    assert (await api.get(f"/jobs/{job_id}")).json() == (await api.get(f"/api/jobs/{job_id}")).json()
    moved = await api.put(f"/jobs/{job_id}/priority", json={"priority": "critical"})
    assert moved.json()["status"] == "moved", moved.text
    stats = (await api.get("/stats")).json()
    assert {"queues", "workers", "runs", "tasks"} <= set(stats) and stats["tasks"] == len(obs_tasks)
    assert [q["waiting"] for q in stats["queues"]["queues"] if q["queue"] == "idle"] == [1]
    assert (await api.get("/workers")).json() == []
    assert (await api.get("/dlq")).json()["total"] == 0
    assert (await api.get("/health")).json()["status"] == "ok"
    gone = await api.delete(f"/jobs/{job_id}")
    assert gone.json() == {"id": job_id, "status": "cancelled"}
    assert (await api.get(f"/jobs/{job_id}")).json()["state"] == "cancelled"
    assert (await api.delete("/jobs/nope")).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"origin": "http://127.0.0.1:9999"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
async def test_a_cross_site_request_cannot_change_anything(
    api: httpx.AsyncClient, client: Client, obs_tasks: dict[str, Task[Any, Any]], headers: dict[str, str]
) -> None:
    await catalog.publish(client.redis, client.keys, obs_tasks)
    job_id = await client.enqueue("observe_tasks.join", a=1, b=2, queue="idle")
    for method, path in [
        ("POST", f"/api/jobs/{job_id}/cancel"),
        ("DELETE", f"/jobs/{job_id}"),
        ("POST", "/api/dlq/replay"),
        ("POST", "/api/jobs"),
    ]:
        reply = await api.request(method, path, headers=headers, content=b"")
        assert reply.status_code == 403, (method, path, reply.text)
    assert (await client.job(job_id)).state == "queued"
    # the dashboard's own requests (same origin) and clients that send no Origin still work
    same = {"origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"}
    assert (await api.post(f"/api/jobs/{job_id}/cancel", headers=same)).json()["status"] == "cancelled"


async def test_without_a_token_only_loopback_host_names_are_answered(
    api: httpx.AsyncClient, redis_url: str, namespace: str
) -> None:
    for host in ("evil.example", "evil.example:8080", "10.0.0.1", "127.0.0.1.evil.example"):
        reply = await api.get("/api/queues", headers={"host": host})
        assert reply.status_code == 421, (host, reply.text)
    for host in ("127.0.0.1:8080", "localhost", "[::1]:8080", "127.0.0.2"):
        assert (await api.get("/api/health", headers={"host": host})).status_code == 200, host
    named = create_app(ApiSettings(redis_url, namespace, allowed_hosts=("tq.internal",)))
    transport = httpx.ASGITransport(app=named)
    async with httpx.AsyncClient(transport=transport, base_url="http://tq.internal") as http:
        assert (await http.get("/api/health")).status_code == 200
    await named.state.services.close()
    with_token = create_app(ApiSettings(redis_url, namespace, token="t"))
    transport = httpx.ASGITransport(app=with_token)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.example.org") as http:
        ok = await http.get("/api/queues", headers={"authorization": "Bearer t"})
        assert ok.status_code == 200  # with a token any Host is fine: the token is the check
    await with_token.state.services.close()


async def test_reprioritizing_keeps_the_enqueue_time(
    api: httpx.AsyncClient, client: Client, obs_tasks: dict[str, Task[Any, Any]], start_worker: WorkerFactory
) -> None:
    job_id = await client.enqueue(obs_tasks["observe_tasks.join"], a=1, b=2, queue="idle", priority="low")
    before = (await api.get(f"/jobs/{job_id}")).json()
    await asyncio.sleep(0.05)
    assert (await api.put(f"/jobs/{job_id}/priority", json={"priority": "high"})).json()["status"] == "moved"
    after = (await api.get(f"/jobs/{job_id}")).json()  # the same id finds it at its new level
    assert after["priority"] == "high" and after["enqueued"] == before["enqueued"]
    recorder = AttemptRecorder(client.redis, client.keys.namespace)
    await start_worker(obs_tasks, hooks=[recorder], queues=["idle"])
    assert await client.result(job_id, timeout=20) == 3
    await recorder.flush()
    [attempt] = (await api.get(f"/jobs/{job_id}")).json()["attempts"]
    assert attempt["waited_ms"] >= 50  # counted from the submission, not from the move


async def test_a_job_shows_its_arguments_policy_duration_and_fan_out_items(
    api: httpx.AsyncClient, client: Client, obs_tasks: dict[str, Task[Any, Any]], start_worker: WorkerFactory
) -> None:
    from tqflow.runtime.policies import fixed

    job_id = await client.enqueue(
        obs_tasks["observe_tasks.join"], a=1, b=2, queue="observe", retry=fixed("1s", 4), timeout="5s"
    )
    queued = (await api.get(f"/jobs/{job_id}")).json()
    assert queued["args"] == {"a": 1, "b": 2}
    assert queued["options"]["retry"]["attempts"] == 4 and queued["options"]["timeout_ms"] == 5000
    assert queued["duration_ms"] is None
    await client.deploy(watch_plan())
    run_id = await client.start_run("spread")
    await start_worker(obs_tasks, queues=["observe"])
    assert await client.result(job_id, timeout=20) == 3
    assert (await client.wait(run_id, 20)).state == "succeeded"
    done = (await api.get(f"/jobs/{job_id}")).json()
    assert done["result"] == 3 and done["duration_ms"] is not None and done["duration_ms"] >= 0
    items = (await api.get(f"/api/jobs/{run_id}.each/children?limit=2")).json()
    assert [(j["id"], j["state"]) for j in items["items"]] == [
        (f"{run_id}.each.0", "succeeded"),
        (f"{run_id}.each.1", "succeeded"),
    ]
    assert items["total"] == 3 and items["next_offset"] == 2
    found = (await api.get("/api/runs", params={"q": '"items": [1, 2, 3]'})).json()["items"]
    assert [r["id"] for r in found] == [run_id]
    created = found[0]["created"]
    assert (await api.get("/api/runs", params={"since": created + 1})).json()["items"] == []
    window = (await api.get("/api/runs", params={"since": created, "until": created})).json()["items"]
    assert [r["id"] for r in window] == [run_id]
