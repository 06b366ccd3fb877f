"""Lean jobs (runtime/store/lean.py): a plain standalone job is queued as its stream entry alone, and is still
found, waited for, cancelled, moved and run by its id — against a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.jobs import BulkRejected, JobCancelled, JobFailed, JobNotFound, Unique
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls, lean, records
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts, prelude
from tqflow.runtime.sync import SyncClient

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


async def namespace_bytes(redis: Redis, prefix: str) -> int:
    total = 0
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        total += int(await redis.memory_usage(key, samples=0) or 0)
    return total


async def test_a_queued_job_costs_less_than_125_bytes(client: Client, redis: Redis) -> None:
    n = 1000
    for i in range(n):
        await client.enqueue(jt.add, x=i)
    per_job = await namespace_bytes(redis, client.keys.prefix) / n
    print(f"[lean] {per_job:.1f} bytes per queued job (MEMORY USAGE SAMPLES 0, {n} jobs)")
    assert per_job < 125
    assert await redis.xlen(client.keys.stream("default", 2)) == n


async def test_a_lean_job_is_found_by_its_id_while_queued(client: Client, redis: Redis) -> None:
    before = now_ms()
    job_id = await client.enqueue(jt.add, x=1, priority="low")
    assert lean.parse(job_id) is not None and job_id.startswith("default.3.")
    info = await client.job(job_id)
    assert (info.state, info.task, info.queue, info.priority, info.attempt) == (
        "queued",
        "job_tasks.add",
        "default",
        "low",
        0,
    )
    assert info.enqueued_ms is not None and abs(info.enqueued_ms - before) < 5_000
    inspector = Inspector(redis, client.keys.namespace)
    view = await inspector.job(job_id)
    assert (view.id, view.name, view.state, view.priority) == (job_id, job_id, "queued", "low")
    listed = await inspector.jobs(state="queued")
    assert [j.id for j in listed.items] == [job_id]
    assert [j.id for j in await client.list_jobs(state="queued")] == [job_id]
    assert await redis.exists(client.keys.job(job_id)) == 0  # reading made no record
    # An id of the same shape whose entry does not exist is no job.
    with pytest.raises(JobNotFound):
        await client.job("default.3.1-0")
    with pytest.raises(LookupError):
        await inspector.job("default.3.1-0")


async def test_a_lean_job_runs_and_its_record_holds_the_end(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    queued = [await client.enqueue(jt.add, x=i) for i in range(5)]  # read by the worker's fetch
    await start_worker(TASKS)
    await asyncio.sleep(0.2)
    blocked = await client.enqueue(jt.add, x=10)  # read by the blocking read, started by start_many
    assert [await client.result(j, timeout=10) for j in queued] == [1, 2, 3, 4, 5]
    assert await client.result(blocked, timeout=10) == 11
    info = await client.job(blocked)
    assert (info.state, info.attempt, info.queue, info.priority) == ("succeeded", 1, "default", "normal")
    assert await redis.xlen(client.keys.stream("default", 2)) == 0


async def test_options_travel_on_the_entry(client: Client, start_worker: WorkerFactory) -> None:
    job_id = await client.enqueue(jt.always_fails, message="boom")  # the task's retry policy
    assert lean.parse(job_id) is not None
    await start_worker(TASKS)
    with pytest.raises(JobFailed):
        await client.result(job_id, timeout=10)
    assert (await client.job(job_id)).attempt == 3


async def test_cancel_a_lean_job(client: Client, redis: Redis, start_worker: WorkerFactory) -> None:
    job_id = await client.enqueue(jt.record, tag="never")
    assert await client.cancel(job_id) == "cancelled"
    assert await redis.xlen(client.keys.stream("default", 2)) == 0
    assert (await client.job(job_id)).state == "cancelled"
    assert await client.cancel(job_id) == "cancelled"  # already ended so
    await start_worker(TASKS)
    with pytest.raises(JobCancelled):
        await client.result(job_id, timeout=5)
    assert "never" not in jt.seen


async def test_cancel_after_a_worker_read_the_entry_still_stops_it(client: Client, redis: Redis) -> None:
    """A blocking read delivers the entry, which starts the job's first attempt (it has no record); the job is
    cancelled before the worker's start_many: the cancel flags the attempt, and start_many ends it cancelled
    instead of handing it over, so its body never runs."""
    stream = client.keys.stream("default", 2)
    await redis.xgroup_create(stream, client.keys.group, id="0", mkstream=True)
    job_id = await client.enqueue(jt.record, tag="late")
    [[_, [(entry, _)]]] = await redis.xreadgroup(client.keys.group, "w1", {stream: ">"}, count=1)
    assert (await client.job(job_id)).state == "running"  # delivered: its first attempt runs
    assert await redis.exists(client.keys.job(job_id)) == 0  # … and has no record
    assert await client.cancel(job_id) == "cancelling"
    started = await Scripts(redis).run(
        calls.start_many(client.keys, now_ms(), "w1", "t.", 30_000, [("", stream, entry)])
    )
    assert started == []
    assert (await client.job(job_id)).state == "cancelled"
    # it expires as other ended standalone jobs do (it had no expiry: kept forever)
    assert 0 < await redis.pttl(client.keys.job(job_id)) <= 86_400_000
    assert await redis.xpending(stream, client.keys.group) == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }
    assert await redis.zcard(client.keys.dlq) == 0  # not mistaken for a malformed entry


async def test_reprioritize_a_lean_job(client: Client, redis: Redis, start_worker: WorkerFactory) -> None:
    job_id = await client.enqueue(jt.add, x=1, priority="batch")
    assert await client.reprioritize(job_id, "critical") == "moved"
    assert await redis.xlen(client.keys.stream("default", 4)) == 0
    [(_, fields)] = await redis.xrange(client.keys.stream("default", 0))
    assert fields == {"j": job_id}  # it has a record now; the id still names it
    info = await client.job(job_id)
    assert (info.state, info.priority) == ("queued", "critical")
    await start_worker(TASKS)
    assert await client.result(job_id, timeout=10) == 2


async def test_aging_moves_a_lean_job_and_keeps_its_id(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    job_id = await client.enqueue(jt.add, x=5, priority="batch")
    await asyncio.sleep(0.01)
    moved = await Scripts(redis).run(calls.age(client.keys, now_ms(), 1, 0, ["default"]))
    assert moved == 1
    assert await redis.xlen(client.keys.stream("default", 4)) == 0
    info = await client.job(job_id)
    assert (info.state, info.priority) == ("queued", "critical")
    await start_worker(TASKS)
    assert await client.result(job_id, timeout=10) == 6


async def test_bulk_lean_jobs(client: Client, redis: Redis, start_worker: WorkerFactory) -> None:
    n = 2500  # staged: more than one script call's worth
    ids = await client.enqueue_many([(jt.add, {"x": i}) for i in range(n)])
    assert len(set(ids)) == n and all(lean.parse(i) for i in ids)
    assert [k async for k in redis.scan_iter(match=f"{client.keys.prefix}:job:*")] == []
    assert (await client.job(ids[1234])).state == "queued"
    holder = await client.enqueue(jt.record, tag="holder", unique=Unique("k1", "1m", "reject"))
    clash: Any = (jt.record, {"tag": "again"}, {"unique": Unique("k1", "1m", "reject")})
    results = await client.enqueue_many([(jt.add, {"x": 1}), clash], atomic=False)
    assert [r.status for r in results] == ["ok", "rejected"]
    with pytest.raises(BulkRejected):  # all or nothing: the lean jobs of a refused batch are not written
        await client.enqueue_many([(jt.add, {"x": 1}), clash, (jt.add, {"x": 2})])
    assert await redis.xlen(client.keys.stream("default", 2)) == n + 2  # the holder has a record too
    assert (await client.job(holder)).state == "queued"
    await start_worker(TASKS, concurrency=50)
    sample: list[Any] = [ids[0], ids[n // 2], ids[-1], results[0]]
    assert [await client.result(j, timeout=30) for j in sample] == [1, n // 2 + 1, n, 2]


async def test_a_lean_id_names_its_queue(client: Client, start_worker: WorkerFactory) -> None:
    job_id = await client.enqueue(jt.add, x=1, queue="img.v2:fast")
    assert job_id.startswith("img.v2:fast.2.")
    assert (await client.job(job_id)).queue == "img.v2:fast"
    await start_worker(TASKS, queues=["img.v2:fast"])
    assert await client.result(job_id, timeout=10) == 2


async def test_lua_and_python_agree_on_lean_ids(client: Client, redis: Redis) -> None:
    probe = prelude() + "\nreturn {lean_id_at(KEYS[1], ARGV[1]), lean_parts(ARGV[2])}"
    for queue, level in (("default", 2), ("a.b:c-d", 0), ("x.1.2-3", 4)):
        entry = "1732751234567-12"
        job_id = lean.lean_id(queue, level, entry)
        reply = await redis.eval(probe, 1, client.keys.stream(queue, level), entry, job_id)  # type: ignore[misc]
        assert reply == [job_id, queue, str(level), entry]
        assert lean.parse(job_id) == (queue, level, entry)


async def test_a_queue_name_no_url_can_carry_keeps_the_record(client: Client, redis: Redis) -> None:
    job_id = await client.enqueue(jt.add, x=1, queue="team/images")
    assert lean.parse(job_id) is None and len(job_id) == 16
    assert await redis.hget(client.keys.job(job_id), "state") == "queued"


async def test_the_sync_client_queues_lean_jobs(redis_url: str, namespace: str, redis: Redis) -> None:
    def use() -> tuple[list[str], list[str], str, str, bool]:
        with SyncClient.from_url(redis_url, namespace) as sync:
            ids = [str(sync.enqueue(jt.add, x=i)) for i in range(200)]
            many = [str(i) for i in sync.enqueue_many([(jt.add, {"x": i}) for i in range(300)])]
            state = sync.job(ids[0]).state
            cancelled = sync.cancel(ids[1])
            return ids, many, state, cancelled, sync._client is None

    ids, many, state, cancelled, native = await asyncio.to_thread(use)
    assert native  # the native sync path, no event loop
    assert all(lean.parse(i) for i in [*ids, *many]) and len(set(ids + many)) == 500
    assert (state, cancelled) == ("queued", "cancelled")
    prefix = Keys(namespace).prefix
    assert await redis.xlen(f"{prefix}:q:default:2") == 499
    assert [k async for k in redis.scan_iter(match=f"{prefix}:job:*")] == [f"{prefix}:job:{ids[1]}"]
    assert await namespace_bytes(redis, prefix) / 499 < 125


async def until_state(client: Client, job_id: str, state: str, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await client.job(job_id)).state != state:
        assert loop.time() < deadline, f"{job_id} never became {state}"
        await asyncio.sleep(0.01)


async def test_a_first_attempt_writes_no_record_until_its_end(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    """The delivery starts a lean job's first attempt; its end writes the record's end alone (result,
    times, worker, task: the id says queue, level and enqueue time), which expires as any end does."""
    await start_worker(TASKS)
    job_id = await client.enqueue(jt.sleeper, seconds=0.3)
    await until_state(client, job_id, "running")
    assert await redis.exists(client.keys.job(job_id)) == 0  # running with no record: its entry is pending
    running = await Inspector(redis, client.keys.namespace).job(job_id)
    assert (running.state, running.attempt, running.task) == ("running", 1, "job_tasks.sleeper")
    assert running.worker and running.started is not None
    await until_state(client, job_id, "succeeded")
    record = await redis.hgetall(client.keys.job(job_id))
    assert record.keys() == {"state", "ran"}  # the rest packed in `ran` (store/endrow.py)
    fields = records.fields(record)
    assert fields.keys() == {"state", "result", "attempt", "started", "finished", "worker", "task", "payload"}
    assert 0 < await redis.pttl(client.keys.job(job_id)) <= 86_400_000
    info = await client.job(job_id)
    assert (info.state, info.attempt, info.queue, info.priority, info.task) == (
        "succeeded",
        1,
        "default",
        "normal",
        "job_tasks.sleeper",
    )
    assert info.result == "woke" and info.worker == running.worker
    assert info.enqueued_ms == int(job_id.rsplit(".", 1)[1].split("-")[0])
    assert info.started_ms is not None and info.finished_ms is not None
    assert info.enqueued_ms <= info.started_ms <= info.finished_ms
    assert await redis.xlen(client.keys.stream("default", 2)) == 0


async def test_a_waiter_only_flags_a_lean_job(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    job_id = await client.enqueue(jt.add, x=41)
    waiting = asyncio.create_task(client.result(job_id, timeout=10))
    for _ in range(200):
        if await redis.exists(client.keys.job(job_id)):
            break
        await asyncio.sleep(0.01)
    assert await redis.hgetall(client.keys.job(job_id)) == {"w": "1"}  # the flag, and no state
    assert (await client.job(job_id)).state == "queued"
    assert (await Inspector(redis, client.keys.namespace).job(job_id)).state == "queued"
    await start_worker(TASKS)
    assert await waiting == 42


async def test_cancel_a_running_first_attempt(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await start_worker(TASKS)
    job_id = await client.enqueue(jt.sleeper, seconds=30)
    await until_state(client, job_id, "running")
    assert await client.cancel(job_id) == "cancelling"
    with pytest.raises(JobCancelled):
        await client.result(job_id, timeout=10)
    info = await client.job(job_id)
    assert (info.state, info.attempt) == ("cancelled", 1)


async def test_a_first_attempt_that_fails_gets_its_record(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    """Any end but success needs the record (the retry, the error, the dead-letter queue): made from the
    entry, with the attempt's worker and start."""
    await start_worker(TASKS)
    job_id = await client.enqueue(jt.always_fails, message="boom", retry=None)
    with pytest.raises(JobFailed):
        await client.result(job_id, timeout=10)
    record = await redis.hgetall(client.keys.job(job_id))
    assert record["state"] == "dead" and record["task"] == "job_tasks.always_fails"
    assert record["payload"] and record["worker"] and int(record["attempt"]) == 3
    assert job_id in await redis.zrange(client.keys.dlq, 0, -1)


async def test_a_late_finish_of_a_first_attempt_is_refused(client: Client, redis: Redis) -> None:
    """The fence of a record-less attempt is its pending entry: once recovery took it back (a record, a new
    entry), the old attempt's finish changes nothing."""
    stream = client.keys.stream("default", 2)
    await redis.xgroup_create(stream, client.keys.group, id="0", mkstream=True)
    job_id = await client.enqueue(jt.add, x=1)
    scripts = Scripts(redis)
    [row] = await scripts.run(calls.fetch(client.keys, now_ms(), "w1", "t.", 30_000, 1, [(stream, 1)]))
    assert row[:3] == [job_id, "@" + job_id.rsplit(".", 1)[1], 1]
    assert await redis.exists(client.keys.job(job_id)) == 0
    # hand-back (the worker stopped): the entry goes back as a new one, the job gets a record
    from tqflow.runtime.cluster.recovery import hand_back
    from tqflow.runtime.store.cluster_keys import ClusterKeys

    assert await hand_back(redis, ClusterKeys(client.keys), "w1", client.keys.streams("default")) == 1
    late = [[job_id, row[1], "succeeded", "J-|2", 0, "", now_ms(), "job_tasks.add"]]
    assert await scripts.run(calls.finish_many(client.keys, now_ms(), 60_000, late, "w1")) == ["stale"]
    assert await redis.hget(client.keys.job(job_id), "state") == "queued"
    # a finish with a token the entry does not give is refused as well
    other = await client.enqueue(jt.add, x=2)  # read after the job handed back
    await scripts.run(calls.fetch(client.keys, now_ms(), "w1", "t.", 30_000, 2, [(stream, 2)]))
    forged = [[other, "@1-0", "succeeded", "J-|3", 0, "", now_ms(), "job_tasks.add"]]
    assert await scripts.run(calls.finish_many(client.keys, now_ms(), 60_000, forged, "w1")) == ["stale"]
    assert (await client.job(other)).state == "running"


async def test_a_record_an_older_waiter_made_while_queued_still_ends(client: Client, redis: Redis) -> None:
    """Before a lean job's first attempt went without a record, a waiter made a queued job's record (state
    queued, the entry in place). Started by its delivery, such a job still ends with its result."""
    stream = client.keys.stream("default", 2)
    await redis.xgroup_create(stream, client.keys.group, id="0", mkstream=True)
    job_id = await client.enqueue(jt.add, x=1)
    entry = job_id.rsplit(".", 1)[1]
    await redis.hset(
        client.keys.job(job_id),
        mapping={"state": "queued", "task": "job_tasks.add", "queue": "default", "prio": "2", "entry": entry},
    )
    scripts = Scripts(redis)
    [row] = await scripts.run(calls.fetch(client.keys, now_ms(), "w1", "t.", 30_000, 1, [(stream, 1)]))
    end = [[job_id, row[1], "succeeded", "J-|2", 0, "", now_ms(), "job_tasks.add"]]
    assert await scripts.run(calls.finish_many(client.keys, now_ms(), 60_000, end, "w1")) == ["succeeded"]
    info = await client.job(job_id)
    assert (info.state, info.attempt, info.result) == ("succeeded", 1, 2)
    assert await redis.xlen(stream) == 0
    assert (await redis.xpending(stream, client.keys.group))["pending"] == 0


async def test_an_idle_worker_starts_a_lean_job_by_its_delivery(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    """The blocking read's delivery is the start: no start script between the read and the body."""
    worker = await start_worker(TASKS)
    scripts = worker.context.scripts
    called: list[str] = []
    run = scripts.run

    async def spied(call: Any) -> Any:
        called.append(call.name)
        return await run(call)

    scripts.run = spied  # type: ignore[method-assign]
    await asyncio.sleep(0.3)  # idle: blocked on its streams
    job_id = await client.enqueue(jt.add, x=1)
    assert await client.result(job_id, timeout=10) == 2
    assert "start_many" not in called and "finish_many" in called, called
    assert (await client.job(job_id)).attempt == 1


async def test_a_record_made_while_queued_runs_once_its_entry_was_delivered(
    client: Client, redis: Redis
) -> None:
    """A lean job with a record made while queued (it has a dependent), its entry delivered by a blocking
    read: it is running from then on, so nothing moves it (a second run) or cancels it as if queued."""
    stream = client.keys.stream("default", 2)
    await redis.xgroup_create(stream, client.keys.group, id="0", mkstream=True)
    first = await client.enqueue(jt.add, x=1, priority="normal")
    await client.enqueue(jt.add, x=10, depends_on=[first])  # gives `first` its record, entry in place
    assert await redis.hget(client.keys.job(first), "state") == "queued"
    await redis.xreadgroup(client.keys.group, "w1", {stream: ">"}, count=1)  # delivered: started
    with pytest.raises(ValueError):  # it started: it is not moved
        await client.reprioritize(first, "high")
    assert await redis.hget(client.keys.job(first), "token") == "@" + first.rsplit(".", 1)[1]
    assert await client.cancel(first) == "cancelling"
    assert await redis.xlen(stream) == 1  # its entry stays, pending under w1
