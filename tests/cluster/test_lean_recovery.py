"""Recovery of lean jobs (queued as a stream entry alone, whose delivery starts their first attempt without a
record): a dead worker's delivered lean job comes back, a graceful hand-back returns it, and a late finish of
a lost attempt is refused."""

from __future__ import annotations

import asyncio

from cluster_helpers import create_groups, finish_as, ghost_start, nap_tasks
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.cluster.recovery import Reclaimer, hand_back
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.store.cluster_keys import ClusterKeys

from helpers import WorkerFactory

FAST = ClusterSettings(heartbeat_ms=100, dead_after_ms=400, leader_lease_ms=600, steal_after_ms=0)


def reaper(client: Client, redis: Redis) -> Reclaimer:
    keys = ClusterKeys(client.keys)
    return Reclaimer(redis, keys, "reaper", ["default"], FAST, lambda: True, lambda: False)


async def test_a_lean_entry_read_by_a_dead_worker_comes_back(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    job_id = await client.enqueue("cluster_tasks.nap", key="lean", ms=0)
    await create_groups(redis, client.keys)
    stream = client.keys.stream("default", 2)
    # read by a worker that then died: the delivery started the job's first attempt (it has no record)
    await redis.xreadgroup(client.keys.group, "ghost", {stream: ">"}, count=1)
    assert (await client.job(job_id)).state == "running"
    await asyncio.sleep(0.15)
    counts = await reaper(client, redis).once()
    assert counts.reclaimed == 1, counts
    record = await redis.hgetall(client.keys.job(job_id))
    # attempt 1 was lost with its worker
    assert (record["state"], record["attempt"], record["lost"]) == ("queued", "1", "1")
    await start_worker(tasks)
    assert await client.result(job_id, timeout=10) == "lean"
    assert (await client.job(job_id)).attempt == 2


async def test_a_lean_job_started_by_a_dead_worker_is_reclaimed_and_its_finish_refused(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    job_id = await client.enqueue("cluster_tasks.nap", key="lean", ms=0)
    ((started, token),) = await ghost_start(redis, client.keys, "ghost")
    assert started == job_id
    assert (await client.job(job_id)).state == "running"
    await asyncio.sleep(0.15)
    counts = await reaper(client, redis).once()
    assert counts.reclaimed == 1, counts
    assert await finish_as(redis, client.keys, job_id, token) == "stale"
    await start_worker(tasks)
    await client.result(job_id, timeout=10)
    info = await client.job(job_id)
    assert (info.state, info.attempt) == ("succeeded", 2)


async def test_hand_back_returns_a_lean_entry_read_but_not_started(client: Client, redis: Redis) -> None:
    job_id = await client.enqueue("cluster_tasks.nap", key="lean", ms=0)
    await create_groups(redis, client.keys)
    stream = client.keys.stream("default", 2)
    await redis.xreadgroup(client.keys.group, "leaving", {stream: ">"}, count=1)
    back = await hand_back(redis, ClusterKeys(client.keys), "leaving", client.keys.streams("default"))
    assert back == 1
    info = await client.job(job_id)
    assert info.state == "queued"
    [(_, fields)] = await redis.xrange(stream)
    assert fields == {"j": job_id}
