"""A deployed flow's life, as a user drives it: `tqc start`, pause/unpause, undeploy, backfill, from the
command line, the REST API and the Python client, against a real Redis."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from cluster_helpers import nap_plan, nap_tasks
from redis.asyncio import Redis

from tqflow.plan import CatchupPlan, TriggerPlan
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.client import Client
from tqflow.runtime.cluster.leader import Leader
from tqflow.runtime.cluster.scheduler import Scheduler
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.deployments import FlowNotDeployed
from tqflow.runtime.lifecycle import backfill_run_id, window_ticks
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.sync import SyncClient

from cli_runner import tqc_on
from helpers import WorkerFactory

MINUTELY = TriggerPlan(
    name="every:0",
    kind="every",
    every_ms=60_000,
    catchup=CatchupPlan(kind="all", within_ms=3_600_000),
    overlap="allow",  # so caught-up ticks are not skipped as overlapping the first of them
)


async def run_ids(client: Client, redis: Redis) -> list[str]:
    return [str(r) for r in await redis.zrange(client.keys.runs, 0, -1)]


async def test_tqc_start_runs_the_deployed_version_on_the_cluster_workers(
    client: Client, redis_url: str, namespace: str, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    await client.deploy(nap_plan())
    await start_worker(tasks)
    waited = await asyncio.to_thread(
        tqc_on, redis_url, namespace, "start", "nap", "--param", "key=from-cli", "--wait", "--json"
    )
    assert waited.returncode == 0, waited.stderr
    run = json.loads(waited.stdout)
    assert run["state"] == "succeeded" and run["finished"] is True
    assert run["params"]["key"] == "from-cli"
    assert run["jobs"]["sleep"]["result"] == "from-cli"
    # Without --wait: the id at once; an unknown flow is exit 5 with a message, a bad param exit 2.
    started = await asyncio.to_thread(tqc_on, redis_url, namespace, "start", "nap")
    assert started.returncode == 0
    assert (await client.wait(started.stdout.strip(), 30)).state == "succeeded"
    missing = await asyncio.to_thread(tqc_on, redis_url, namespace, "start", "nope")
    assert missing.returncode == 5 and "not deployed" in missing.stderr
    bad = await asyncio.to_thread(tqc_on, redis_url, namespace, "start", "nap", "--param", "ms=soon")
    assert bad.returncode == 2 and "ms" in bad.stderr


async def test_a_paused_flow_fires_no_ticks_and_unpausing_catches_up(client: Client, redis: Redis) -> None:
    await client.deploy(nap_plan(MINUTELY))
    keys = ClusterKeys(client.keys)
    leader = Leader(redis, keys, "lead", 30_000)
    await leader.campaign()
    scheduler = Scheduler(redis, keys, ClusterSettings(), lambda: leader.holder)
    three_ago = (now_ms() // 60_000 - 3) * 60_000
    await redis.hset(keys.trigger("nap", "every:0"), "last", three_ago)  # three ticks are due
    assert await client.pause("nap") == 1
    await scheduler.once()
    assert scheduler.fired == 0 and await run_ids(client, redis) == []
    assert await client.lifecycle.paused("nap")
    await client.unpause("nap")
    await scheduler.once()
    assert scheduler.fired == 3  # catchup all(within=1h): the ticks missed while paused, each once
    await scheduler.once()
    assert scheduler.fired == 3


async def test_undeploy_keeps_runs_in_progress_on_their_version(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    await client.deploy(nap_plan())
    slow = await client.start_run("nap", {"key": "slow", "ms": 600})
    gone = await client.undeploy("nap")
    assert gone.version == 1 and gone.running == [slow]
    try:
        await client.start_run("nap")
        raise AssertionError("an undeployed flow must not start")
    except FlowNotDeployed:
        pass
    assert "nap" not in await client.deployments.names()
    await start_worker(tasks)
    assert (await client.wait(slow, 30)).state == "succeeded"  # it kept version 1
    again = await client.deploy(nap_plan())
    assert again[0].version == 2
    # --cancel-runs: a run in progress is cancelled instead.
    doomed = await client.start_run("nap", {"key": "doomed", "ms": 5000})
    await asyncio.sleep(0.3)
    cancelled = await client.undeploy("nap", cancel_runs=True)
    assert cancelled.cancelled == [doomed]
    assert (await client.wait(doomed, 30)).state == "cancelled"


async def test_backfill_starts_each_tick_once_even_when_repeated(
    client: Client, redis: Redis, redis_url: str, namespace: str, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    await client.deploy(nap_plan(MINUTELY))
    start, end = 1_767_225_600_000, 1_767_225_600_000 + 4 * 60_000  # 2026-01-01T00:00Z + 4 minutes
    first = [item async for item in client.backfill("nap", start, end, rate=1000)]
    assert (
        [i.tick for i in first]
        == window_ticks(MINUTELY, start, end)
        == [start + m * 60_000 for m in range(5)]
    )
    assert {i.status for i in first} == {"started"}
    # The CLI, over an overlapping window: the five are known, two are new.
    cli = await asyncio.to_thread(
        tqc_on, redis_url, namespace, "backfill", "nap", "--from", "2026-01-01T00:02:00Z",
        "--to", "2026-01-01T01:06:00+01:00", "--rate", "1000", "--json",
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    statuses = [json.loads(line)["status"] for line in cli.stdout.splitlines()]
    assert statuses == ["exists"] * 3 + ["started"] * 2
    ids = await run_ids(client, redis)
    assert len(ids) == 7 == len(set(ids))
    assert backfill_run_id("nap", "every:0", start) in ids
    await start_worker(tasks)
    for run_id in ids:
        info = await client.wait(run_id, 30)
        assert info.state == "succeeded"
    tick = await redis.hget(client.keys.run(ids[0]), "tick")
    assert tick == str(start)
    no_schedule = await asyncio.to_thread(
        tqc_on, redis_url, namespace, "backfill", "nap", "--from", "x", "--to", "y"
    )
    assert no_schedule.returncode == 2


async def test_the_rest_api_pauses_backfills_and_undeploys(
    client: Client, redis_url: str, namespace: str
) -> None:
    await client.deploy(nap_plan(MINUTELY))
    app = create_app(ApiSettings(redis_url=redis_url, namespace=namespace))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        paused = await http.post("/api/flows/nap/pause")
        assert paused.status_code == 200 and paused.json() == {"flow": "nap", "version": 1, "paused": True}
        assert await client.lifecycle.paused("nap")
        assert (await http.post("/api/flows/nap/unpause")).json()["paused"] is False
        body = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:01:00Z"}
        filled = await http.post("/api/flows/nap/backfill", json=body)
        assert filled.status_code == 200, filled.text
        assert [t["status"] for t in filled.json()] == ["started", "started"]
        again = await http.post("/api/flows/nap/backfill", json=body)
        assert [t["status"] for t in again.json()] == ["exists", "exists"]
        too_many = await http.post(
            "/api/flows/nap/backfill", json={"from": "2025-01-01T00:00:00Z", "to": body["to"]}
        )
        assert too_many.status_code == 422
        assert (await http.post("/api/flows/missing/pause")).status_code == 404
        gone = await http.delete("/api/flows/nap", params={"cancel_runs": "true"})
        assert gone.status_code == 200 and gone.json()["version"] == 1
        assert (await http.get("/api/flows/nap")).status_code == 404


def test_the_sync_client_drives_the_same_lifecycle(redis_url: str, namespace: str) -> None:
    with SyncClient(redis_url, namespace) as sync:
        sync.deploy(nap_plan(MINUTELY))
        assert sync.pause("nap") == 1 and sync.unpause("nap") == 1
        start = 1_767_225_600_000
        filled = sync.backfill("nap", start, start + 60_000, rate=1000)
        assert [(b.tick, b.status) for b in filled] == [(start, "started"), (start + 60_000, "started")]
        assert [b.status for b in sync.backfill("nap", start, start + 60_000, rate=1000)] == ["exists"] * 2
        gone = sync.undeploy("nap", cancel_runs=True)
        assert sorted(gone.cancelled) == sorted(b.run_id for b in filled)
        with pytest.raises(FlowNotDeployed):
            sync.pause("nap")
