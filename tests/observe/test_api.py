"""Every REST route against a real Redis: data, filters, pagination, bad input (422), auth, size cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings, is_loopback
from tqflow.runtime.attempts import AttemptRecorder
from tqflow.runtime.client import Client
from tqflow.runtime.task import Task

from .conftest import watch_plan
from helpers import WorkerFactory

TOKEN = "s3cret-token"


async def open_api(redis_url: str, namespace: str, **settings: Any) -> tuple[httpx.AsyncClient, Any]:
    app = create_app(ApiSettings(redis_url, namespace, **settings))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    return http, app


@pytest.fixture
async def api(redis_url: str, namespace: str) -> AsyncIterator[httpx.AsyncClient]:
    http, app = await open_api(redis_url, namespace)
    yield http
    await http.aclose()
    await app.state.services.close()


async def test_runs_jobs_flows_queues_workers_dlq_and_metrics(
    api: httpx.AsyncClient,
    client: Client,
    redis: Redis,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    await client.deploy(watch_plan())
    assert (await api.get("/api/health")).json() == {"status": "ok", "redis": True, "namespace": namespace}
    started = await api.post("/api/runs", json={"flow": "watch", "params": {"ms": 10}})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    await asyncio.sleep(0.01)  # runs are listed by creation time in ms: keep the two apart
    bad_run = (await api.post("/api/runs", json={"flow": "broken"})).json()["id"]
    recorder = AttemptRecorder(redis, namespace)
    await start_worker(obs_tasks, hooks=[recorder], queues=["observe"])
    assert (await client.wait(run_id, 20)).state == "succeeded"
    assert (await client.wait(bad_run, 20)).state == "failed"
    await recorder.flush()

    runs = (await api.get("/api/runs")).json()
    assert [r["id"] for r in runs["items"]] == [bad_run, run_id] and runs["total"] == 2
    assert [r["id"] for r in (await api.get("/api/runs?state=failed")).json()["items"]] == [bad_run]
    assert [r["id"] for r in (await api.get("/api/runs?flow=watch")).json()["items"]] == [run_id]
    assert (await api.get("/api/runs?limit=1")).json()["next_offset"] == 1
    run = (await api.get(f"/api/runs/{run_id}")).json()
    assert run["state"] == "succeeded" and len(run["jobs"]) == 4 and len(run["edges"]) == 4
    assert run["params"] == {"ms": 10}

    jobs = (await api.get(f"/api/jobs?run={run_id}&limit=2")).json()
    assert [j["name"] for j in jobs["items"]] == ["first", "left"] and jobs["total"] == 4
    dead = (await api.get(f"/api/jobs/{bad_run}.bad")).json()
    assert dead["state"] == "dead" and [a["outcome"] for a in dead["attempts"]] == ["retry", "dead"]
    assert "Traceback" in dead["error"]["traceback"]
    assert [j["id"] for j in (await api.get("/api/jobs?state=dead")).json()["items"]] == [f"{bad_run}.bad"]

    flows = (await api.get("/api/flows")).json()
    assert {f["name"] for f in flows} == {"watch", "broken", "spread"}
    flow = (await api.get("/api/flows/watch?version=1")).json()
    assert flow["version"] == 1 and flow["plan"]["order"] == ["first", "left", "right", "joined"]

    queues = (await api.get("/api/queues")).json()
    assert [q["queue"] for q in queues["queues"]] == ["observe"] and queues["dead"] == 1
    assert len((await api.get("/api/queues/observe")).json()["levels"]) == 5
    assert [w["queues"] for w in (await api.get("/api/workers")).json()] == [["observe"]]
    dlq = (await api.get("/api/dlq")).json()
    assert dlq["total"] == 1 and dlq["items"][0]["job"]["task"] == "observe_tasks.fail"

    metrics = (await api.get("/metrics")).text
    names = {f.name for f in text_string_to_metric_families(metrics)}
    assert {"tqflow_queue_waiting", "tqflow_dlq_size", "tqflow_runs"} <= names
    assert (await api.get("/openapi.json")).json()["info"]["title"] == "tqflow"
    page = await api.get("/")
    assert page.status_code == 200 and "tqflow" in page.text


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/api/runs/nope", None, 404),
        ("get", "/api/jobs/nope.x", None, 404),
        ("get", "/api/flows/nope", None, 404),
        ("get", "/api/queues/nope", None, 404),
        ("get", "/api/runs?limit=0", None, 422),
        ("get", "/api/runs?limit=abc", None, 422),
        ("get", "/api/runs?offset=-1", None, 422),
        ("get", "/api/runs?state=bogus", None, 422),
        ("get", "/api/runs/a%7Bb%7D", None, 422),
        ("get", "/api/jobs", None, 422),  # needs a run or a live state
        ("get", "/api/jobs?state=succeeded", None, 422),
        ("get", "/api/flows/watch?version=0", None, 422),
        ("post", "/api/runs", {"flow": "nope"}, 404),
        ("post", "/api/runs", {"flow": "watch", "params": {"ms": "many"}}, 422),
        ("post", "/api/runs", {"flow": "watch", "params": {"nope": 1}}, 422),
        ("post", "/api/runs", {"params": {}}, 422),
        ("post", "/api/runs", [1, 2], 422),
        ("post", "/api/runs", {"flow": "watch", "version": 9}, 404),
    ],
)
async def test_bad_input_gets_a_4xx_with_a_message(
    api: httpx.AsyncClient, client: Client, method: str, path: str, body: Any, status: int
) -> None:
    await client.deploy(watch_plan())
    reply = await api.request(method.upper(), path, json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["detail"]


async def test_malformed_json_and_oversized_bodies(redis_url: str, namespace: str) -> None:
    http, app = await open_api(redis_url, namespace, max_body=1000)
    try:
        bad = await http.post("/api/runs", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 422
        big = await http.post("/api/runs", json={"flow": "watch", "params": {"x": "y" * 2000}})
        assert big.status_code == 413 and "1000 bytes" in big.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b" " * 100

        streamed = await http.post(
            "/api/runs", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
    finally:
        await http.aclose()
        await app.state.services.close()


async def test_bearer_token_guards_every_route_but_health(redis_url: str, namespace: str) -> None:
    http, app = await open_api(redis_url, namespace, token=TOKEN)
    try:
        assert (await http.get("/api/health")).status_code == 200
        assert (await http.get("/")).status_code == 200  # the dashboard's page holds no data
        for path in ("/api/runs", "/api/flows", "/api/queues", "/api/workers", "/api/dlq", "/metrics"):
            denied = await http.get(path)
            assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer", path
            assert (await http.get(path, headers={"authorization": "Bearer wrong"})).status_code == 401
            assert (await http.get(path, headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200
        assert (await http.post("/api/runs", json={"flow": "x"})).status_code == 401
    finally:
        await http.aclose()
        await app.state.services.close()


def test_binding_beyond_loopback_needs_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    ApiSettings("redis://x").check_binding("127.0.0.1")
    ApiSettings("redis://x", token="t").check_binding("0.0.0.0")
    with pytest.raises(ValueError, match="beyond loopback"):
        ApiSettings("redis://x").check_binding("0.0.0.0")
