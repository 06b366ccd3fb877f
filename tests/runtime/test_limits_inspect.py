"""Looking at limiters the ways a user does: `tqc limits`, `GET /api/limits`, the metrics, `tqc jobs list
--state limited`, and submitting a limited job through `POST /api/jobs`."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tqflow.runtime import catalog
from tqflow.runtime.client import Client
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.limits import Limiter, Rate
from tqflow.runtime.metrics import RedisCollector
from tqflow.runtime.registry import load_tasks

from cli_runner import Ran, tqc_on
from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["limit_tasks"], [FLOWS])
import limit_tasks as lt  # noqa: E402 - loaded from tests/flows above


async def tqc(redis_url: str, namespace: str, *args: str) -> Ran:
    """`tqc …` in a thread: the in-process worker's loop keeps beating meanwhile."""
    return await asyncio.to_thread(tqc_on, redis_url, namespace, *args)


async def until(check: object, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_every_view_shows_use_and_waiting_jobs(
    client: Client,
    start_worker: WorkerFactory,
    api: httpx.AsyncClient,
    redis_url: str,
    namespace: str,
) -> None:
    t = uuid.uuid4().hex[:8]
    db = Limiter(f"db-{t}", concurrency=1)
    # the holder runs and the bucket refills far beyond what the test takes on a loaded machine (it once
    # took over 30 s): the waiting jobs are still waiting when each view is read
    api_rate = Limiter(f"api-{t}", rate=Rate(2, per="h", burst=1))
    held = [await client.enqueue(lt.hold, tag=t, seconds=120, limit=db.by("k1")) for _ in range(3)]
    rated = [await client.enqueue(lt.hold, tag=t + "r", seconds=0, limit=api_rate) for _ in range(2)]
    # a loaded machine can stall this process's loop for seconds: no recovery of its own jobs meanwhile
    patient = ClusterSettings(dead_after_ms=120_000)
    await start_worker(TASKS, queues=["limits"], concurrency=10, lease_ms=300_000, cluster=patient)
    inspector = Inspector(client.redis, namespace)

    async def settled() -> bool:
        overview = await inspector.limits()
        return sum(lim.waiting for lim in overview.limiters) == 3  # two behind db, one behind the bucket

    await until(settled)
    overview = await inspector.limits()
    by_name = {lim.name: lim for lim in overview.limiters}
    conc = by_name[f"db-{t}"]
    assert (conc.kind, conc.definition, conc.capacity) == ("concurrency", "concurrency(1)", 1)
    assert [(k.key, k.in_use, k.waiting) for k in conc.keys] == [("k1", 1, 2)]
    rate = by_name[f"api-{t}"]
    assert rate.kind == "rate" and rate.definition == "rate(2 per 3600000 ms, burst=1)"
    [bucket] = rate.keys
    assert bucket.key == "" and bucket.waiting == 1 and bucket.tokens is not None and bucket.tokens < 1
    assert bucket.next_admission_ms is not None

    # the CLI, as a user runs it
    shown = await tqc(redis_url, namespace, "limits", "--json")
    assert shown.returncode == 0, shown.stderr
    assert {lim["name"]: lim["waiting"] for lim in json.loads(shown.stdout)["limiters"]} == {
        f"db-{t}": 2,
        f"api-{t}": 1,
    }
    table = await tqc(redis_url, namespace, "limits", f"db-{t}")
    assert table.returncode == 0 and "concurrency(1)" in table.stdout and "k1" in table.stdout
    assert f"api-{t}" not in table.stdout
    waiting = await tqc(redis_url, namespace, "jobs", "list", "--state", "limited", "--json")
    assert waiting.returncode == 0, waiting.stderr
    assert {row["id"] for row in json.loads(waiting.stdout)} == {*held[1:], rated[1]}

    # the REST API and the dashboard's source
    page = (await api.get("/api/limits", params={"limiter": f"db-{t}"})).json()
    assert [lim["name"] for lim in page["limiters"]] == [f"db-{t}"]
    limited = (await api.get("/api/jobs", params={"state": "limited"})).json()
    assert {j["id"] for j in limited["items"]} == {*held[1:], rated[1]}
    assert {j["state"] for j in limited["items"]} == {"limited"}

    # the metrics
    collector = RedisCollector(inspector)
    await collector.refresh()
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(collector)
    parsed = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert parsed[("tqflow_limit_waiting", (("kind", "concurrency"), ("limiter", f"db-{t}")))] == 2
    assert parsed[("tqflow_limit_in_use", (("kind", "concurrency"), ("limiter", f"db-{t}")))] == 1
    assert parsed[("tqflow_limit_waiting", (("kind", "rate"), ("limiter", f"api-{t}")))] == 1

    for job in held:
        await client.cancel(job)
    await client.cancel(rated[1])


async def test_no_limiter_yet(redis_url: str, namespace: str) -> None:
    shown = await tqc(redis_url, namespace, "limits")
    assert shown.returncode == 0 and "no limiter has been used yet" in shown.stdout


async def test_submit_a_limited_job_through_the_api(
    api: httpx.AsyncClient, client: Client, start_worker: WorkerFactory
) -> None:
    t = uuid.uuid4().hex[:8]
    await catalog.publish(client.redis, client.keys, TASKS)
    body = {"task": "limit_tasks.hold", "queue": "limits", "kwargs": {"tag": t, "seconds": 0.1}}
    limit = [{"name": f"rest-{t}", "concurrency": 1, "key": "c7"}]
    made = [(await api.post("/api/jobs", json={**body, "limit": limit, "fair_key": "c7"})) for _ in range(3)]
    assert [m.status_code for m in made] == [201] * 3, made[0].text
    await start_worker(TASKS, queues=["limits"], concurrency=5)
    for m in made:
        await client.result(m.json()["id"], timeout=10)
    assert lt.peak[t] == 1

    bad = await api.post("/api/jobs", json={**body, "limit": [{"name": "x"}]})
    assert bad.status_code == 422 and "exactly one of" in bad.text
    both = await api.post("/api/jobs", json={**body, "limit": [{"name": "x", "rate": 5, "concurrency": 1}]})
    assert both.status_code == 422 and both.json()["detail"][0]["loc"] == ["body", "limit", 0]
    period = await api.post(
        "/api/jobs", json={**body, "limit": [{"name": "x", "rate": 5, "per": "fortnight"}]}
    )
    assert period.status_code == 422
    zero = await api.post("/api/jobs", json={**body, "limit": [{"name": "x", "concurrency": 0}]})
    assert zero.status_code == 422
    weight = await api.post("/api/jobs", json={**body, "weight": 2})
    assert weight.status_code == 422 and "give both" in weight.text
