"""Retries, delays, timeouts, deadlines, cancellation, priority changes, uniqueness and the
dead-letter queue for standalone jobs, against a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.jobs import JobCancelled, JobFailed, JobRejected, Unique
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.store import lean
from tqflow.runtime.store.payloads import PayloadSettings

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


async def test_retry_rules_pick_a_policy_by_exception_class(
    client: Client, start_worker: WorkerFactory
) -> None:
    await start_worker(TASKS)
    key = client.keys.namespace
    gateway = await client.enqueue(jt.picky, key=f"{key}-g", kind="gateway")
    card = await client.enqueue(jt.picky, key=f"{key}-c", kind="card")
    other = await client.enqueue(jt.picky, key=f"{key}-o", kind="other")
    for job_id in (gateway, card, other):
        with pytest.raises(JobFailed):
            await client.result(job_id, timeout=10)
    # GatewayTimeout (a ConnectionError) has its own rule: 4 attempts; CardDeclined is never retried;
    # anything else follows the default policy: 2 attempts.
    assert [jt.attempts[f"{key}-{k}"] for k in "gco"] == [4, 1, 2]
    assert (await client.job(card)).error["final"] == "never retried"  # type: ignore[index]


async def test_a_task_can_ask_for_a_retry(client: Client, start_worker: WorkerFactory) -> None:
    await start_worker(TASKS)
    job_id = await client.enqueue(jt.asks_for_retry, key=f"{client.keys.namespace}-r")
    assert await client.result(job_id, timeout=10) == 2


async def test_delay_is_met_to_the_millisecond(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await start_worker(TASKS)
    await asyncio.sleep(0.2)  # the promoter sleeps (up to a second) with nothing due
    before = time.time()
    job_id = await client.enqueue(jt.add, x=1, delay="300ms")
    assert (await client.job(job_id)).state == "scheduled"
    assert await client.result(job_id, timeout=10) == 2
    started = int(await redis.hget(client.keys.job(job_id), "started"))  # type: ignore[arg-type]
    late_ms = started - (before * 1000 + 300)
    assert -5 <= late_ms < 150, late_ms


async def test_timeout_and_deadline(client: Client, start_worker: WorkerFactory) -> None:
    await start_worker(TASKS)
    with pytest.raises(JobFailed) as caught:
        await client.result(await client.enqueue(jt.too_slow), timeout=10)
    assert caught.value.error["type"] == "Timeout"
    from tqflow.runtime.policies import fixed

    job_id = await client.enqueue(
        jt.sleeper, seconds=0.2, retry=fixed("10ms", attempts=10), timeout="100ms", deadline="250ms"
    )
    with pytest.raises(JobFailed):
        await client.result(job_id, timeout=10)
    assert (await client.job(job_id)).attempt < 10  # the deadline ended it before its attempts ran out


async def test_cancel_a_queued_job(client: Client, redis: Redis) -> None:
    job_id = await client.enqueue(jt.add, x=1)
    assert await client.cancel(job_id) == "cancelled"
    assert await redis.xlen(client.keys.stream("default", 2)) == 0
    with pytest.raises(JobCancelled):
        await client.result(job_id, timeout=1)


@pytest.mark.parametrize("target", ["async", "thread"])
async def test_cancel_a_running_job(client: Client, start_worker: WorkerFactory, target: str) -> None:
    await start_worker(TASKS)
    job_id = (
        await client.enqueue(jt.sleeper, seconds=30)
        if target == "async"
        else await client.enqueue(jt.busy_thread, seconds=30)
    )
    for _ in range(100):
        if (await client.job(job_id)).state == "running":
            break
        await asyncio.sleep(0.02)
    started = time.monotonic()
    assert await client.cancel(job_id) == "cancelling"
    with pytest.raises(JobCancelled):
        await client.result(job_id, timeout=10)
    assert time.monotonic() - started < 3


async def test_reprioritize_moves_a_queued_job(client: Client, redis: Redis) -> None:
    job_id = await client.enqueue(jt.add, x=1, priority="batch")
    assert await client.reprioritize(job_id, "critical") == "moved"
    assert await redis.xlen(client.keys.stream("default", 4)) == 0
    assert await redis.xlen(client.keys.stream("default", 0)) == 1
    assert (await client.job(job_id)).priority == "critical"


async def test_unique_skip_reject_replace(client: Client, redis: Redis) -> None:
    first = await client.enqueue(jt.record, tag="a", unique=Unique("order-1", "1m"))
    again = await client.enqueue(jt.record, tag="b", unique=Unique("order-1", "1m"))
    assert (again, again.status) == (first, "skipped")
    with pytest.raises(JobRejected):
        await client.enqueue(jt.record, tag="c", unique=Unique("order-1", "1m", "reject"))
    replacing = await client.enqueue(jt.record, tag="d", unique=Unique("order-1", "1m", "replace"))
    assert replacing != first
    assert (await client.job(first)).state == "cancelled"
    ttl = await redis.pttl(client.keys.unique("order-1"))
    assert 0 < ttl <= 60_000


async def test_unique_under_concurrent_submits(client: Client) -> None:
    results = await asyncio.gather(
        *(client.enqueue(jt.record, tag=str(i), unique=Unique("race", "1m", "skip")) for i in range(50))
    )
    assert len(set(results)) == 1
    assert [r.status for r in results].count("ok") == 1


async def test_dead_letters_can_be_listed_and_replayed(client: Client, start_worker: WorkerFactory) -> None:
    await start_worker(TASKS)
    ids = [await client.enqueue(jt.always_fails, message=f"m{i}", dead_letter="payments") for i in range(3)]
    for job_id in ids:
        with pytest.raises(JobFailed):
            await client.result(job_id, timeout=10)
    listed = await client.dead_letters("payments")
    assert sorted(j.id for j in listed) == sorted(ids)
    assert "payments" in await client.dead_letter_queues()
    assert await client.replay([ids[0]], "payments") == {ids[0]: "replayed"}
    with pytest.raises(JobFailed):
        await client.result(ids[0], timeout=10)
    assert (await client.job(ids[0])).attempt == 3
    assert set(await client.replay_all("payments")) == set(ids)


async def queued_with_payload(client: Client, task: str, payload: str) -> str:
    """A job queued as another producer would have sent it: a lean entry carrying this payload as is."""
    entry = await client.redis.xadd(client.keys.stream("default", 2), {"t": task, "p": payload})
    return lean.lean_id("default", 2, str(entry))


async def test_payload_upgraders(client: Client, start_worker: WorkerFactory) -> None:
    # a producer on schema version 1 sent `name`; version 2 of the task takes `full_name`
    from tqflow.runtime.store import payloads

    old = payloads.encode({"name": "Ada"}, version=1)
    job_id = await queued_with_payload(client, "job_tasks.greet", old)
    current = await client.enqueue(jt.greet, full_name="Bob")
    await start_worker(TASKS)
    assert await client.result(job_id, timeout=10) == "hello Ada"
    assert await client.result(current, timeout=10) == "hello Bob"


@pytest.mark.parametrize(
    "settings",
    [
        PayloadSettings(codec="msgpack"),
        PayloadSettings(codec="json", compress_over=10),
        PayloadSettings(codec="pickle", signing_key=b"secret", compress_over=50),
    ],
    ids=["msgpack", "json-zlib", "pickle-signed"],
)
async def test_codecs_round_trip(
    redis: Redis, namespace: str, start_worker: WorkerFactory, settings: PayloadSettings
) -> None:
    from tqflow.runtime.worker import WorkerSettings

    client = Client(redis, namespace, payload_settings=settings)
    await start_worker(TASKS, payloads=settings)
    job_id = await client.enqueue(jt.add, x=40, y=2)
    assert await client.result(job_id, timeout=10) == 42
    assert WorkerSettings  # the worker reads the same settings
    await client.waiter.close()


async def test_unsigned_pickle_is_dead_lettered_never_loaded(
    client: Client, start_worker: WorkerFactory, tmp_path: object
) -> None:
    import base64
    import os
    import pickle
    from pathlib import Path

    marker = Path(str(tmp_path)) / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    body = base64.b64encode(pickle.dumps({"x": Evil()})).decode()
    ids = []
    for forged in (f"P-|{'0' * 64}|{body}", f"P-|{body}"):
        ids.append(await queued_with_payload(client, "job_tasks.add", forged))
    await start_worker(TASKS, payloads=PayloadSettings(codec="pickle", signing_key=b"right"))
    for job_id in ids:
        with pytest.raises(JobFailed) as caught:
            await client.result(job_id, timeout=10)
        assert caught.value.error["type"] == "PayloadError"
    assert not marker.exists()


async def test_malformed_entries_are_dead_lettered_with_a_reason(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    stream = client.keys.stream("default", 2)
    await redis.xadd(stream, {"x": "no job id"})
    await redis.xadd(stream, {"j": "no-such-job"})
    good = await client.enqueue(jt.add, x=1)
    await start_worker(TASKS)
    assert await client.result(good, timeout=10) == 2
    for _ in range(100):
        if await redis.zcard(client.keys.dlq) == 2:
            break
        await asyncio.sleep(0.02)
    dead = [await client.job(i) for i in await redis.zrange(client.keys.dlq, 0, -1)]
    assert sorted(d.error["message"] for d in dead) == [  # type: ignore[index]
        "stream entry has no job id (field j)",
        "stream entry names job no-such-job, which does not exist",
    ]
    assert await redis.xlen(stream) == 0
