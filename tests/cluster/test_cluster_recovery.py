"""Recovery, dead-lettering, stealing and hand-back against a real Redis with in-process workers."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster_helpers import finish_as, ghost_start, nap_plan, nap_tasks, start_naps
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.cluster.recovery import Reclaimer
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.connection import connect
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.worker import Worker, WorkerSettings

from helpers import WorkerFactory

FAST = ClusterSettings(heartbeat_ms=100, dead_after_ms=400, leader_lease_ms=600, steal_after_ms=0)


async def test_jobs_of_a_dead_worker_run_again_and_its_late_finish_is_refused(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    await client.deploy(nap_plan())
    runs = await start_naps(client, 3, prefix="dead")
    attempts = await ghost_start(redis, client.keys, "ghost-1", count=3)
    assert len(attempts) == 3
    await start_worker(tasks, cluster=FAST)
    for run_id in runs:
        info = await client.wait(run_id, timeout=15)
        assert info.state == "succeeded", info
        assert info.jobs["sleep"].attempt == 2
    for job_id, token in attempts:
        assert await finish_as(redis, client.keys, job_id, token) == "stale"
    assert await redis.hget(client.keys.job(attempts[0][0]), "result") != '"late"'


async def test_a_job_that_keeps_losing_its_worker_is_dead_lettered(client: Client, redis: Redis) -> None:
    await client.deploy(nap_plan())
    (run_id,) = await start_naps(client, 1, prefix="poison")
    settings = ClusterSettings(heartbeat_ms=100, dead_after_ms=400, max_deliveries=3)
    reclaimer = Reclaimer(
        redis, ClusterKeys(client.keys), "reaper", ["default"], settings, lambda: True, lambda: False
    )
    for delivery in range(3):
        assert len(await ghost_start(redis, client.keys, f"ghost-{delivery}")) == 1
        await asyncio.sleep(0.15)
        counts = await reclaimer.once()
        assert (counts.reclaimed, counts.dead) == ((1, 0) if delivery < 2 else (0, 1)), counts
    info = await client.wait(run_id, timeout=5)
    assert info.state == "failed"
    assert info.jobs["sleep"].state == "dead"
    assert info.jobs["sleep"].error is not None and info.jobs["sleep"].error["type"] == "WorkerLost"
    assert await redis.zscore(client.keys.dlq, f"{run_id}.sleep") is not None
    assert await reclaimer.once() == type(counts)()  # nothing left pending


async def test_expired_lease_is_reclaimed_even_when_the_worker_is_alive(client: Client, redis: Redis) -> None:
    await client.deploy(nap_plan())
    await start_naps(client, 1, prefix="lease")
    keys = ClusterKeys(client.keys)
    ((job_id, token),) = await ghost_start(redis, client.keys, "paused")
    await redis.hset(keys.worker("paused"), "node", "x")  # its record is alive …
    await redis.hset(client.keys.job(job_id), "lease_until", 1)  # … but the lease ran out
    await redis.zadd(keys.leases, {job_id: 1})
    reclaimer = Reclaimer(redis, keys, "reaper", ["default"], FAST, lambda: True, lambda: False)
    counts = await reclaimer.once()
    assert counts.reclaimed == 1
    assert await redis.hget(client.keys.job(job_id), "state") == "queued"
    assert await finish_as(redis, client.keys, job_id, token) == "stale"


async def test_an_idle_worker_steals_entries_a_busy_worker_has_not_started(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    await client.deploy(nap_plan())
    runs = await start_naps(client, 4, prefix="steal")
    keys = Keys(client.keys.namespace)
    streams = keys.streams("default")
    for stream in streams:
        await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
    # A live but busy worker read four entries into its prefetch and sits on them.
    await redis.hset(ClusterKeys(keys).worker("busy"), "node", "x")
    read = await redis.xreadgroup(keys.group, "busy", dict.fromkeys(streams, ">"), count=4)
    assert sum(len(entries) for _, entries in read) == 4
    stealer = ClusterSettings(heartbeat_ms=100, dead_after_ms=400, steal_after_ms=300)
    await start_worker(tasks, cluster=stealer)
    for run_id in runs:
        assert (await client.wait(run_id, timeout=10)).state == "succeeded"
    for stream in streams:
        assert (await redis.xpending(stream, keys.group))["pending"] == 0


async def test_stopping_hands_back_unfinished_jobs_at_once(
    client: Client, redis: Redis, redis_url: str, start_worker: WorkerFactory
) -> None:
    module, tasks = nap_tasks()
    await client.deploy(nap_plan())
    (run_id,) = await start_naps(client, 1, ms=3000, prefix="handback")
    connection = connect(redis_url)
    settings = WorkerSettings(cluster=ClusterSettings(grace_s=0.2, steal_after_ms=0))
    slow = Worker(connection, tasks, client.keys.namespace, settings)
    stop = asyncio.Event()
    running = asyncio.create_task(slow.run(stop))
    while "handback0" not in module.started:
        await asyncio.sleep(0.01)
    stopped_at = asyncio.get_running_loop().time()
    stop.set()  # what SIGTERM does in `tqrun worker`
    await asyncio.wait_for(running, 5)
    await connection.aclose()
    assert asyncio.get_running_loop().time() - stopped_at < 1.5
    assert await redis.hget(client.keys.job(f"{run_id}.sleep"), "state") == "queued"
    assert settings.name not in await redis.zrange(ClusterKeys(client.keys).workers, 0, -1)
    for stream in client.keys.streams("default"):  # it left the consumer groups too
        consumers = await redis.xinfo_consumers(stream, client.keys.group)
        assert settings.name not in [c["name"] for c in consumers]
    await start_worker(tasks)  # another worker picks it up at once
    info = await client.wait(run_id, timeout=10)
    assert info.state == "succeeded" and info.jobs["sleep"].attempt == 2
    assert module.done.count("handback0") == 1  # the first attempt was stopped, not finished


async def test_a_pass_sweeps_every_stream_in_one_round_trip(client: Client, redis: Redis) -> None:
    """The first page of every stream goes in one pipeline: a pass over an idle deployment is one round trip,
    and what it finds on any stream is reclaimed as by one call a stream."""
    await client.enqueue("cluster_tasks.nap", priority="high", key="h", ms=0)
    await client.enqueue("cluster_tasks.nap", priority="low", key="l", ms=0)
    attempts = await ghost_start(redis, client.keys, "ghost-levels", count=1)
    assert len(attempts) == 2  # one a level: two streams hold a dead worker's entry
    await asyncio.sleep(0.15)
    keys = ClusterKeys(client.keys)
    reclaimer = Reclaimer(redis, keys, "reaper", ["default"], FAST, lambda: True, lambda: False)
    sent: list[str] = []
    run = reclaimer.scripts.run

    async def counted(call: Any) -> Any:
        sent.append(call.name)
        return await run(call)

    reclaimer.scripts.run = counted  # type: ignore[method-assign]
    counts = await reclaimer.once()
    assert counts.reclaimed == 2, counts
    assert "cluster_reclaim" not in sent, "a first page went alone, not in the pass's pipeline"
    for job_id, token in attempts:
        assert await finish_as(redis, client.keys, job_id, token) == "stale"
    assert await reclaimer.once() == type(counts)()
