"""A limited lean job (a plain standalone job with `limit=`) stays lean: its start takes its slots and tokens
in the script that starts it and writes no record; the slots are listed on a record only if one is made
later (a heartbeat, recovery, a cancel, an end other than success), and a start or finish script reads and
writes each limiter once a call (lua/limits.lua, `lim_batch`).

The scripts are driven directly here, so what one call admits, parks and gives back is exact; the ledger
tests of test_limiters.py run the same path through real workers."""

from __future__ import annotations

import asyncio
import uuid

from tqflow.runtime.client import Client
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.limits import Limiter, Rate
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.scripts import Scripts

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["limit_tasks"], [FLOWS])
import limit_tasks as lt  # noqa: E402 - loaded from tests/flows above

LEASE_MS = 30_000


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def fetch(client: Client, scripts: Scripts, worker: str, wanted: int) -> list[list[object]]:
    stream = client.keys.stream("limits", 2)
    call = calls.fetch(client.keys, now_ms(), worker, "tok", LEASE_MS, wanted, [(stream, wanted)])
    started: list[list[object]] = await scripts.run(call)
    return started


async def succeed(client: Client, scripts: Scripts, rows: list[list[object]], worker: str) -> list[str]:
    attempts = [(row[0], row[1], "succeeded", "J-|null", 0, "", now_ms(), row[3]) for row in rows]
    statuses: list[str] = await scripts.run(
        calls.finish_many(client.keys, now_ms(), 60_000, attempts, worker=worker)
    )
    return statuses


async def group(client: Client) -> None:
    await client.redis.xgroup_create(client.keys.stream("limits", 2), "tqflow", id="0", mkstream=True)


async def test_one_fetch_admits_up_to_the_limit_parks_the_rest_and_writes_no_record(client: Client) -> None:
    t = tag()
    lim = Limiter(f"batch-{t}", concurrency=3)
    ids = [str(await client.enqueue(lt.hold, tag=t, label=str(i), limit=lim)) for i in range(10)]
    scripts = Scripts(client.redis)
    await group(client)
    rows = await fetch(client, scripts, "w1", 10)
    holders = client.keys.limit(f"batch-{t}|", "s")
    waiting = client.keys.limit(f"batch-{t}|", "w")
    assert [row[0] for row in rows] == ids[:3]  # first come, first served
    assert [row[1] for row in rows] == [f"@{i.rsplit('.', 1)[1]}" for i in ids[:3]]  # lean attempts
    assert sorted(await client.redis.smembers(holders)) == sorted(ids[:3])
    assert await client.redis.lrange(waiting, 0, -1) == ids[3:]
    for i in ids[:3]:  # started from their entries: no record
        assert await client.redis.exists(client.keys.job(i)) == 0
    for i in ids[3:]:  # parked: a record, no attempt
        assert await client.redis.hmget(client.keys.job(i), ["state", "attempt"]) == ["limited", None]
    # the three end in one finish: their slots go back and the next three are let go
    assert await succeed(client, scripts, rows, "w1") == ["succeeded"] * 3
    assert await client.redis.scard(holders) == 3  # held by the grants now
    assert await client.redis.lrange(waiting, 0, -1) == ids[6:]
    assert [await client.redis.hget(client.keys.job(i), "state") for i in ids[3:6]] == ["queued"] * 3


async def test_ends_with_nobody_waiting_give_every_slot_back_in_one_call(client: Client) -> None:
    t = tag()
    lim = Limiter(f"give-{t}", concurrency=5)
    ids = [str(await client.enqueue(lt.hold, tag=t, label=str(i), limit=lim)) for i in range(4)]
    scripts = Scripts(client.redis)
    await group(client)
    rows = await fetch(client, scripts, "w1", 10)
    holders = client.keys.limit(f"give-{t}|", "s")
    assert sorted(await client.redis.smembers(holders)) == sorted(ids)
    floor = await client.redis.zscore(client.keys.limit(f"give-{t}|", "e"), "lease")
    assert floor is not None and floor >= now_ms() + LEASE_MS - 5_000  # the lease bound: the attempts' lease
    assert await succeed(client, scripts, rows, "w1") == ["succeeded"] * 4
    assert await client.redis.scard(holders) == 0
    for i in ids:
        info = await client.job(i)
        assert info.state == "succeeded" and info.attempt == 1
    # the next fetch finds all five slots free
    more = [str(await client.enqueue(lt.hold, tag=t, label=str(i), limit=lim)) for i in range(6)]
    rows = await fetch(client, scripts, "w1", 10)
    assert [row[0] for row in rows] == more[:5]


async def test_one_fetch_takes_a_rate_buckets_tokens_and_parks_the_rest(client: Client) -> None:
    t = tag()
    lim = Limiter(f"bucket-{t}", rate=Rate(1, per="h", burst=4))  # no refill within the test
    ids = [str(await client.enqueue(lt.hold, tag=t, label=str(i), limit=lim)) for i in range(7)]
    scripts = Scripts(client.redis)
    await group(client)
    rows = await fetch(client, scripts, "w1", 10)
    assert [row[0] for row in rows] == ids[:4]
    assert await client.redis.lrange(client.keys.limit(f"bucket-{t}|", "w"), 0, -1) == ids[4:]
    level = await client.redis.get(client.keys.limit(f"bucket-{t}|", "b"))
    assert level is not None and float(level.split()[0]) < 0.01  # the burst of four taken, written once
    rows += await fetch(client, scripts, "w1", 10)  # an empty bucket admits nobody, in a later call too
    assert len(rows) == 4
    assert [await client.redis.exists(client.keys.job(i)) for i in ids[:4]] == [0] * 4


async def test_a_job_past_a_heartbeat_gets_its_record_with_its_slot_and_the_slot_is_renewed(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = tag()
    lim = Limiter(f"beat-{t}", concurrency=1)
    holders = client.keys.limit(f"beat-{t}|", "s")
    job = str(await client.enqueue(lt.hold, tag=t, seconds=1.5, label="long", limit=lim))
    fast = ClusterSettings(heartbeat_ms=200, dead_after_ms=1000)
    await start_worker(TASKS, queues=["limits"], concurrency=4, cluster=fast, lease_ms=2_000)
    held = False
    for _ in range(200):
        held = bool(await client.redis.sismember(holders, job))
        if held:
            break
        await asyncio.sleep(0.01)
    assert held
    started = now_ms()
    await asyncio.sleep(0.8)
    record = await client.redis.hmget(client.keys.job(job), ["state", "token", "lh", "lease_until"])
    assert record[:3] == ["running", f"@{job.rsplit('.', 1)[1]}", f"beat-{t}|\t1"]
    # the slot's lease is the attempt's: the beat renewed the record's, past the first lease's end
    assert int(record[3]) > started + 2_000
    assert await client.redis.sismember(holders, job)
    assert await client.result(job, timeout=10) == "long"
    assert await client.redis.scard(holders) == 0
    assert await client.redis.hget(client.keys.job(job), "lh") is None


async def test_cancelling_a_running_lean_job_gives_its_slot_to_the_next(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = tag()
    lim = Limiter(f"stop-{t}", concurrency=1)
    holders = client.keys.limit(f"stop-{t}|", "s")
    long = str(await client.enqueue(lt.hold, tag=t, seconds=30, label="long", limit=lim))
    after = str(await client.enqueue(lt.hold, tag=t, seconds=0.01, label="after", limit=lim))
    await start_worker(TASKS, queues=["limits"], concurrency=4)
    for _ in range(500):
        held = bool(await client.redis.sismember(holders, long))
        if held and (await client.job(after)).state == "limited":
            break
        await asyncio.sleep(0.01)
    assert (await client.job(after)).state == "limited"
    assert await client.cancel(long) == "cancelling"
    assert await client.result(after, timeout=10) == "after"
    assert (await client.job(long)).state == "cancelled"
    assert lt.peak[t] == 1
    assert await client.redis.scard(holders) == 0


async def test_a_record_made_between_a_blocking_read_and_its_start_does_not_skip_the_slot(
    client: Client,
) -> None:
    """An idle worker's blocking read delivers entries and start_many starts them a moment later. If the
    job's record is made in between (here: a dependent naming it, as `depends_on` does), the record says
    `running` (the delivery started it); its start must still take its slot, or one job more than the limit
    runs."""
    t = tag()
    lim = Limiter(f"race-{t}", concurrency=1)
    first = str(await client.enqueue(lt.hold, tag=t, label="first", limit=lim))
    second = str(await client.enqueue(lt.hold, tag=t, label="second", limit=lim))
    scripts = Scripts(client.redis)
    await group(client)
    stream = client.keys.stream("limits", 2)
    reply = await client.redis.xreadgroup("tqflow", "w1", {stream: ">"}, count=2)  # the blocking read
    entries = [str(e[0]) for e in reply[0][1]]
    assert len(entries) == 2
    await client.enqueue(lt.hold, tag=t, label="after", depends_on=[first])  # makes first's record
    assert await client.redis.hget(client.keys.job(first), "state") == "running"
    call = calls.start_many(client.keys, now_ms(), "w1", "tok", LEASE_MS, [("", stream, e) for e in entries])
    started: list[list[object]] = await scripts.run(call)
    holders = client.keys.limit(f"race-{t}|", "s")
    assert [row[0] for row in started] == [first]  # one slot: the second waits
    assert await client.redis.smembers(holders) == {first}
    assert await client.redis.hget(client.keys.job(second), "state") == "limited"
    assert await succeed(client, scripts, started, "w1") == ["succeeded"]
    assert await client.redis.smembers(holders) == {second}  # its slot went to the second


async def test_a_record_made_while_queued_gives_back_the_slot_its_fetched_start_took(client: Client) -> None:
    """The fetch script's own read starts a lean entry whose record was made while it was queued (a
    dependent naming it): the start takes the slot and leaves the record `queued`; the end must give the
    slot back, or the next job waits for the scan after the lease ends."""
    t = tag()
    lim = Limiter(f"rec-{t}", concurrency=1)
    first = str(await client.enqueue(lt.hold, tag=t, label="first", limit=lim))
    await client.enqueue(lt.hold, tag=t, label="after", depends_on=[first])  # makes first's record
    assert await client.redis.hget(client.keys.job(first), "state") == "queued"
    scripts = Scripts(client.redis)
    await group(client)
    rows = await fetch(client, scripts, "w1", 1)
    holders = client.keys.limit(f"rec-{t}|", "s")
    assert [row[0] for row in rows] == [first]
    assert await client.redis.smembers(holders) == {first}
    assert await succeed(client, scripts, rows, "w1") == ["succeeded"]
    assert await client.redis.scard(holders) == 0


async def test_a_heartbeat_renews_a_fetched_lean_attempt_whose_record_was_made_while_queued(
    client: Client,
) -> None:
    """The same record (a dependent's, made while the job was queued) on an attempt running past a beat:
    the beat renews its lease (and so its slots'); it reported the attempt lost, and recovery would have
    run it a second time beside the first once its lease ended."""
    t = tag()
    lim = Limiter(f"beatrec-{t}", concurrency=1)
    first = str(await client.enqueue(lt.hold, tag=t, label="first", limit=lim))
    await client.enqueue(lt.hold, tag=t, label="after", depends_on=[first])
    scripts = Scripts(client.redis)
    await group(client)
    assert [row[0] for row in await fetch(client, scripts, "w1", 1)] == [first]
    now = now_ms()
    beat = calls.heartbeat(ClusterKeys(client.keys), now, "w1", 10_000, LEASE_MS, "{}", [first])
    assert await scripts.run(beat) == []  # not lost
    record = await client.redis.hmget(client.keys.job(first), ["state", "worker", "lease_until", "lh"])
    assert record == ["running", "w1", str(now + LEASE_MS), f"beatrec-{t}|\t1"]
