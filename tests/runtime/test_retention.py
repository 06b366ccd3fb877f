"""Retention: finished runs are pruned with their jobs, fan-out children, attempt histories and index entry;
a run with a job in a dead-letter queue stays until the job is purged; the durations' sources."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from test_flow_runtime import TASKS, fan_flow

from tqflow.runtime.client import Client
from tqflow.runtime.cluster.retention import DAY_MS, Pruner, Retention, retention_from
from tqflow.runtime.runs import now_ms

from helpers import WorkerFactory, plan_of


async def keys_of(redis: Redis, client: Client) -> set[str]:
    return {str(k) async for k in redis.scan_iter(match=f"{client.keys.prefix}*", count=1000)}


async def test_finished_runs_are_pruned_with_everything_that_names_them(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await client.deploy(fan_flow(3))
    await start_worker(TASKS)
    before = await keys_of(redis, client)
    done = [await client.start_run("fan", {"n": 4}) for _ in range(3)]
    for run_id in done:
        assert (await client.wait(run_id, timeout=30)).state == "succeeded"
    assert await redis.exists(client.keys.job(f"{done[0]}.each.3"))  # a fan-out child
    pruner = Pruner(redis, client.keys, keep_runs_ms=60_000, is_leader=lambda: True)
    assert await pruner.prune(now_ms()) == 0  # ended less than a minute ago: kept
    assert await pruner.prune(now_ms() + 61_000) == 3
    assert await redis.zcard(client.keys.runs) == 0
    left = await keys_of(redis, client) - before
    assert not [k for k in left if ":run:" in k or ":job:" in k], left


async def test_a_run_with_a_dead_lettered_job_stays_until_the_job_is_purged(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await client.deploy(plan_of("failing.tqflow"))
    await start_worker(TASKS)
    run_id = await client.start_run("failing")
    assert (await client.wait(run_id, timeout=30)).state == "failed"
    assert [j.id for j in await client.dead_letters()] == [f"{run_id}.bad"]
    pruner = Pruner(redis, client.keys, keep_runs_ms=1, is_leader=lambda: True)
    assert await pruner.prune(now_ms() + 1000) == 0
    assert await redis.exists(client.keys.run(run_id))
    assert await client.purge_dead_letters([f"{run_id}.bad"]) == 1
    assert await client.dead_letters() == []
    assert await pruner.prune(now_ms() + 1000) == 1
    assert not await redis.exists(client.keys.run(run_id), client.keys.job(f"{run_id}.bad"))


async def test_purging_a_standalone_dead_job_deletes_it(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    import job_tasks as jt

    await start_worker(TASKS)
    job_id = await client.enqueue(jt.always_fails, message="boom")
    with pytest.raises(Exception, match="boom"):
        await client.result(job_id, timeout=30)
    assert await client.purge_dead_letters(queue=None) == 1
    assert not await redis.exists(client.keys.job(str(job_id)))


def test_durations_from_options_then_environment_then_defaults() -> None:
    assert retention_from(None, None, None, {}) == Retention(DAY_MS, None, 7 * DAY_MS)
    assert retention_from(None, None, None, {}).history == DAY_MS
    env = {"TQFLOW_KEEP_RESULTS": "2h", "TQFLOW_KEEP_HISTORY": "30m", "TQFLOW_KEEP_RUNS": "1d12h"}
    assert retention_from(None, None, None, env) == Retention(7_200_000, 1_800_000, 129_600_000)
    assert retention_from("90s", None, "3d", env) == Retention(90_000, 1_800_000, 3 * DAY_MS)
    with pytest.raises(ValueError, match="--keep-runs"):
        retention_from(None, None, "soon", {})
