"""The standalone job API: enqueue, enqueue_many, result, job — against a real Redis."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.jobs import JOBS_PER_PAGE, BulkRejected, JobFailed, Unique
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.validation import ArgumentError

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


async def test_enqueue_and_wait_for_the_result(client: Client, start_worker: WorkerFactory) -> None:
    await start_worker(TASKS)
    job_id = await client.enqueue(jt.add, x=1, y=2)
    assert await client.result(job_id, timeout=10) == 3
    typed = await client.enqueue(jt.async_add.call(3, y=4))
    assert await client.result(typed, timeout=10) == 7
    by_name = await client.enqueue("job_tasks.add", x=10)
    assert await client.result(by_name, timeout=10) == 11
    info = await client.job(job_id)
    assert (info.state, info.attempt, info.task, info.queue, info.priority) == (
        "succeeded",
        1,
        "job_tasks.add",
        "default",
        "normal",
    )


async def test_arguments_are_validated_and_typed(client: Client, start_worker: WorkerFactory) -> None:
    with pytest.raises(ArgumentError, match="argument `x`"):
        await client.enqueue(jt.add, x="not a number")
    with pytest.raises(ArgumentError, match="no parameter `z`"):
        await client.enqueue(jt.add, x=1, z=2)
    await start_worker(TASKS)
    # JSON carries a dict and a string; the worker hands the task a Point and a date.
    job_id = await client.enqueue(jt.norm, p=jt.Point(x=2, y=3), day=dt.date(2026, 11, 27))
    assert await client.result(job_id, timeout=10) == {"sum": 5, "weekday": 5}


async def test_a_dead_job_raises_job_failed_with_its_traceback(
    client: Client, start_worker: WorkerFactory
) -> None:
    await start_worker(TASKS)
    job_id = await client.enqueue(jt.always_fails, message="boom")
    with pytest.raises(JobFailed) as caught:
        await client.result(job_id, timeout=10)
    assert caught.value.error["type"] == "ValueError"
    assert "boom" in caught.value.error["traceback"]
    assert (await client.job(job_id)).attempt == 3
    assert await client.redis.zscore(client.keys.dlq, job_id) is not None


async def test_a_queued_job_is_one_stream_entry_and_no_record(client: Client, redis: Redis) -> None:
    job_id = await client.enqueue(jt.add, x=1)
    assert await redis.exists(client.keys.job(job_id)) == 0
    [(entry, fields)] = await redis.xrange(client.keys.stream("default", 2))
    assert job_id == f"default.2.{entry}"
    assert fields == {"t": "job_tasks.add", "p": 'J-1|{"x":1}'}
    assert [k async for k in redis.scan_iter(match=f"{client.keys.prefix}:run*")] == []
    # A job with a delay (or a deadline, or a unique key) has its small record from the start.
    delayed = await client.enqueue(jt.add, x=1, delay="1h")
    fields = await redis.hgetall(client.keys.job(delayed))
    assert set(fields) == {"state", "task", "payload", "queue", "prio", "opts", "due"}


async def test_bulk_all_or_nothing_is_paged_and_atomic(client: Client, redis: Redis) -> None:
    n = JOBS_PER_PAGE * 3 + 7
    ids = await client.enqueue_many([(jt.add, {"x": i}) for i in range(n)])
    assert len(set(ids)) == n
    assert await redis.xlen(client.keys.stream("default", 2)) == n
    # One job in the middle is refused: nothing of this batch is written.
    await client.enqueue(jt.record, tag="holder", unique=Unique("k1", "1m", "reject"))
    calls: list[Any] = [(jt.add, {"x": i}) for i in range(n)]
    calls.insert(n // 2, (jt.record, {"tag": "again"}, {"unique": Unique("k1", "1m", "reject")}))
    with pytest.raises(BulkRejected) as caught:
        await client.enqueue_many(calls, atomic=True)
    assert [r.status for r in caught.value.results].count("rejected") == 1
    assert await redis.xlen(client.keys.stream("default", 2)) == n + 1


async def test_bulk_best_effort_reports_each_job(client: Client) -> None:
    holder = await client.enqueue(jt.record, tag="x", unique=Unique("shared", "1m", "reject"))
    skip = {"unique": Unique("other", "1m", "skip")}
    results = await client.enqueue_many(
        [
            (jt.add, {"x": 1}),
            ("job_tasks.record", {"tag": "y"}, {"unique": Unique("shared", "1m", "reject")}),
            (jt.record, {"tag": "z"}, skip),
            (jt.record, {"tag": "z2"}, skip),
            (jt.add, {"x": 2}),
        ],
        atomic=False,
    )
    assert [r.status for r in results] == ["ok", "rejected", "ok", "skipped", "ok"]
    assert results[3] == results[2]  # skip: the id of the job holding the key
    assert holder.status == "ok"
