"""`keep_result=False` (`@task`, `enqueue`, POST /api/jobs, `tqc jobs submit --no-keep-result`): a lean job
that succeeds at its first attempt, with nobody waiting for it, writes no end record (its entry is acked and
deleted, nothing else); a waiter, a retry or a record made for another reason keeps the record as before."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from redis.asyncio import Redis

from tqflow.runtime import catalog
from tqflow.runtime.client import Client
from tqflow.runtime.jobs import JobNotFound
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.store import lean, records
from tqflow.runtime.sync import SyncClient
from tqflow.runtime.task import task

from cli_runner import Ran, tqc_on
from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


async def entry_options(redis: Redis, client: Client, job_id: str) -> dict[str, object]:
    parts = lean.parse(job_id)
    assert parts is not None
    queue, level, entry = parts
    [(_, fields)] = await redis.xrange(client.keys.stream(queue, level), entry, entry)
    return records.job_options(fields.get("o"))


async def drained(redis: Redis, client: Client) -> None:
    stream = client.keys.stream("default", 2)
    for _ in range(200):
        if await redis.xlen(stream) == 0:
            pending = await redis.xpending(stream, client.keys.group)
            if pending["pending"] == 0:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the stream did not drain")


async def test_a_success_leaves_no_record(client: Client, redis: Redis, start_worker: WorkerFactory) -> None:
    forgotten = [await client.enqueue(jt.forgetful, tag=f"f{i}") for i in range(20)]
    per_call = await client.enqueue(jt.record, tag="r0", keep_result=False)
    kept = await client.enqueue(jt.record, tag="r1")
    overridden = await client.enqueue(jt.forgetful, tag="f-kept", keep_result=True)
    assert await entry_options(redis, client, forgotten[0]) == {"nr": 1}
    assert await entry_options(redis, client, overridden) == {}
    await start_worker(TASKS, concurrency=8)
    assert await client.result(kept, timeout=10) == "r1"
    assert await client.result(overridden, timeout=10) == "f-kept"
    await drained(redis, client)
    assert {f"f{i}" for i in range(20)} | {"r0"} <= set(jt.seen)  # they all ran
    for job_id in [*forgotten, per_call]:
        assert await redis.exists(client.keys.job(job_id)) == 0
        with pytest.raises(JobNotFound):
            await client.job(job_id)
    assert (await client.job(kept)).state == "succeeded"
    records_left = set(await redis.keys(f"{client.keys.prefix}:job:*"))
    assert records_left == {client.keys.job(kept), client.keys.job(overridden)}


async def test_a_waiter_or_a_retry_keeps_the_record(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    waited = await client.enqueue(jt.forgetful, tag="waited")
    waiting = asyncio.create_task(client.result(waited, timeout=10))
    await asyncio.sleep(0.1)  # the waiter's flag is on the job before a worker runs it
    retried = await client.enqueue(jt.asks_for_retry, key="nr-retry", keep_result=False)
    await start_worker(TASKS, concurrency=4)
    assert await waiting == "waited"
    assert (await client.job(waited)).state == "succeeded"
    assert await client.result(retried, timeout=10) == 2  # its second attempt: the first made the record
    assert (await client.job(retried)).attempt == 2


def test_the_sync_client_takes_it(redis_url: str, namespace: str) -> None:
    with SyncClient.from_url(redis_url, namespace) as sync:
        job_id = sync.enqueue(jt.add, x=1, keep_result=False)
        many = sync.enqueue_many([(jt.add, {"x": 2})], keep_result=False)
        entry = job_id.rsplit(".", 1)[-1]
        [(_, fields)] = sync.redis.xrange(sync.keys.stream("default", 2), entry, entry)
        assert json.loads(fields["o"]) == {"nr": 1}
        assert len(many) == 1
    with (
        pytest.raises(TypeError, match="keep_result must be True or False"),
        SyncClient.from_url(redis_url, namespace) as sync,
    ):
        sync.enqueue(jt.add, x=1, keep_result="no")
    with pytest.raises(TypeError, match="keep_result must be True or False"):
        task(keep_result="no")(lambda: None)  # type: ignore[arg-type]


def tqc(redis_url: str, namespace: str, *args: str) -> Ran:
    return tqc_on(redis_url, namespace, *args, path=[FLOWS])


async def test_post_jobs_and_tqc_take_it(
    client: Client, redis: Redis, redis_url: str, namespace: str, api: httpx.AsyncClient
) -> None:
    await catalog.publish(client.redis, client.keys, TASKS)  # as a worker does
    by_task = await api.post("/jobs", json={"task": jt.forgetful.name, "kwargs": {"tag": "a"}})
    assert by_task.status_code == 201, by_task.text
    assert await entry_options(redis, client, by_task.json()["id"]) == {"nr": 1}  # the task's, published
    kept = await api.post(
        "/jobs", json={"task": jt.forgetful.name, "kwargs": {"tag": "b"}, "keep_result": True}
    )
    assert await entry_options(redis, client, kept.json()["id"]) == {}
    off = await api.post("/jobs", json={"task": jt.add.name, "kwargs": {"x": 1}, "keep_result": False})
    assert await entry_options(redis, client, off.json()["id"]) == {"nr": 1}
    bad = await api.post("/jobs", json={"task": jt.add.name, "kwargs": {"x": 1}, "keep_result": "maybe"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "keep_result"]
    made = await asyncio.to_thread(
        tqc, redis_url, namespace, "jobs", "submit", jt.add.name, "-a", "x=3", "--no-keep-result"
    )
    assert made.returncode == 0, made.stderr
    assert await entry_options(redis, client, made.stdout.strip()) == {"nr": 1}
