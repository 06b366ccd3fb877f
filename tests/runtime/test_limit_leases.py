"""A concurrency semaphore's holders are a set of job ids (lua/limits.lua): no lease is written per holder.
A slot's lease is its attempt's, read (holder_lease_end) only when the semaphore is full, and only once the
lower bound of the holders' lease ends (`:e`) has passed, so a full semaphore is not rescanned at every look.

The scripts are driven directly with chosen clocks (`now`), so when a slot comes back is exact."""

from __future__ import annotations

import asyncio
import uuid

from tqflow.runtime.client import Client
from tqflow.runtime.limits import Limiter
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.scripts import Scripts

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["limit_tasks"], [FLOWS])
import limit_tasks as lt  # noqa: E402 - loaded from tests/flows above

GRANT_MS = 30_000  # limits.lua: a grant holds its slot this long before its start


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def fetch(client: Client, now: int, worker: str, lease: int, wanted: int = 1) -> list[str]:
    stream = client.keys.stream("limits", 2)
    call = calls.fetch(client.keys, now, worker, "tok", lease, wanted, [(stream, wanted)])
    rows: list[list[object]] = await Scripts(client.redis).run(call)
    return [str(row[0]) for row in rows]


async def promote(client: Client, now: int) -> None:
    await Scripts(client.redis).run(calls.promote(client.keys, now, 100))


async def setup(client: Client, name: str, jobs: int) -> list[str]:
    lim = Limiter(name, concurrency=1)
    ids = [str(await client.enqueue(lt.hold, tag=name, label=str(i), limit=lim)) for i in range(jobs)]
    await client.redis.xgroup_create(client.keys.stream("limits", 2), "tqflow", id="0", mkstream=True)
    return ids


async def test_a_dead_workers_lean_slot_comes_back_once_the_lease_bound_passes(client: Client) -> None:
    """The holder is a lean attempt with no record whose worker is gone (no registry record): its lease is
    over, but the full semaphore believes the bound written at its start until that passes; then one
    look reads the holder's lease, drops it and lets the waiting job go."""
    t = f"dead-{tag()}"
    first, second = await setup(client, t, 2)
    holders, floor = client.keys.limit(f"{t}|", "s"), client.keys.limit(f"{t}|", "e")
    t0 = now_ms()
    assert await fetch(client, t0, "gone", 1_000) == [first]
    assert await client.redis.smembers(holders) == {first}
    assert await client.redis.zscore(floor, "lease") == t0 + 1_000
    assert await fetch(client, t0 + 500, "w2", 60_000) == []  # full, and no lease can have ended yet
    assert await client.redis.hget(client.keys.job(second), "state") == "limited"
    # the timer: just past the bound
    assert await client.redis.zscore(client.keys.limit_due, f"{t}|") == t0 + 1_001
    await promote(client, t0 + 900)  # not due: nothing looked at
    assert await client.redis.smembers(holders) == {first}
    await promote(client, t0 + 1_001)
    assert await client.redis.smembers(holders) == {second}  # the dead attempt's slot, granted to the next
    assert await client.redis.hget(client.keys.job(second), "state") == "queued"
    assert await client.redis.zscore(floor, "lease") == t0 + 1_001 + GRANT_MS  # the grant's lease


async def test_a_live_holder_keeps_its_slot_and_the_bound_moves_to_its_lease(client: Client) -> None:
    """A lean attempt with no record under a live worker: its lease is its delivery plus that worker's
    registered lease. The scan keeps it, and the bound becomes that lease end, so the next looks until then
    read nothing."""
    t = f"live-{tag()}"
    first, second = await setup(client, t, 2)
    await client.redis.hset(ClusterKeys(client.keys).worker("alive"), "lease", 60_000)
    t0 = now_ms()
    assert await fetch(client, t0, "alive", 1_000) == [first]  # a short start lease: the bound passes soon
    assert await fetch(client, t0 + 2_000, "w2", 60_000) == []
    holders, floor = client.keys.limit(f"{t}|", "s"), client.keys.limit(f"{t}|", "e")
    assert await client.redis.smembers(holders) == {first}
    bound = await client.redis.zscore(floor, "lease")
    # its delivery (the scan's clock less the entry's idle time) plus the worker's lease
    assert bound is not None and t0 + 2_000 + 60_000 - 5_000 <= bound <= t0 + 2_000 + 60_000
    assert await client.redis.zscore(client.keys.limit_due, f"{t}|") == bound + 1
    assert await client.redis.hget(client.keys.job(second), "state") == "limited"


async def test_a_running_records_lease_and_a_grants_are_what_the_scan_reads(client: Client) -> None:
    """A holder with a record: `lease_until` of its running attempt (a heartbeat renews it), or, granted
    and not started yet, its grant time plus GRANT_MS. A holder whose record ended without giving the slot
    back (nothing should, but a set cannot say) is dropped by the scan."""
    t = f"rec-{tag()}"
    first, second, third = await setup(client, t, 3)
    holders, floor = client.keys.limit(f"{t}|", "s"), client.keys.limit(f"{t}|", "e")
    t0 = now_ms()
    assert await fetch(client, t0, "w1", 1_000) == [first]
    # as the heartbeat leaves it: a running record whose lease runs far beyond the bound
    await client.redis.hset(client.keys.job(first), mapping={"state": "running", "lease_until": t0 + 50_000})
    assert await fetch(client, t0 + 2_000, "w2", 60_000, wanted=2) == []  # both parked
    assert await client.redis.smembers(holders) == {first}
    assert await client.redis.zscore(floor, "lease") == t0 + 50_000
    # its attempt ends without a release (a set keeps the id): the bound passes, the scan drops it
    await client.redis.hset(client.keys.job(first), "state", "succeeded")
    await promote(client, t0 + 50_001)
    assert await client.redis.smembers(holders) == {second}  # granted: it holds the slot until it starts
    granted = int(await client.redis.hget(client.keys.job(second), "granted") or 0)
    assert granted == t0 + 50_001
    await promote(client, granted + GRANT_MS)  # not past the grant's lease
    assert await client.redis.smembers(holders) == {second}
    await promote(client, granted + GRANT_MS + 1)  # a grant never started: its slot goes to the next
    assert await client.redis.smembers(holders) == {third}


async def test_holders_of_the_zset_layout_are_folded_into_the_set_once(client: Client) -> None:
    """A namespace whose semaphores were kept by the older layout (`:h`, a zset of id -> lease end): the
    first worker's start moves the holders whose lease had not run out into the set, so their slots still
    count; the second start finds the namespace migrated."""
    t = f"old-{tag()}"
    (waiting,) = await setup(client, t, 1)
    now = now_ms()
    member = f"{t}|"
    await client.redis.zadd(client.keys.limit_keys, {member: now})
    await client.redis.zadd(client.keys.limit(member, "h"), {"live.job": now + 60_000, "gone.job": now - 1})
    scripts = Scripts(client.redis)
    assert await scripts.run(calls.limit_holders(client.keys, now)) == 1
    assert await client.redis.exists(client.keys.limit(member, "h")) == 0
    assert await client.redis.smembers(client.keys.limit(member, "s")) == {"live.job"}
    assert await client.redis.zscore(client.keys.limit(member, "e"), "lease") == now + 60_000
    assert await scripts.run(calls.limit_holders(client.keys, now)) == -1
    assert await fetch(client, now, "w1", 30_000) == []  # the migrated holder's slot still counts
    assert await client.redis.hget(client.keys.job(waiting), "state") == "limited"


async def test_a_worker_start_migrates_the_namespace(client: Client, start_worker: WorkerFactory) -> None:
    await start_worker(TASKS, queues=["limits"], concurrency=1)
    for _ in range(500):  # the worker sets itself up in its own task
        if await client.redis.get(client.keys.limit_layout) is not None:
            break
        await asyncio.sleep(0.02)
    assert await client.redis.get(client.keys.limit_layout) == "set"
