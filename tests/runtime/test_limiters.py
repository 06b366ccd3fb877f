"""Flow control for standalone jobs: rate and concurrency limiters, enforced in Redis (lua/limits.lua).

Each test checks the limit from a ledger kept outside Redis (tests/flows/limit_tasks.py records when each
job ran), never from the limiter's own state."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tqflow.runtime import catalog
from tqflow.runtime.client import Client
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.limits import Limit, Limiter, LimiterConflict, Rate, limits_of
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts
from tqflow.runtime.task import task

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["limit_tasks"], [FLOWS])
import limit_tasks as lt  # noqa: E402 - loaded from tests/flows above


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def results(client: Client, ids: list[Any], timeout: float = 20) -> list[Any]:
    return [await client.result(i, timeout=timeout) for i in ids]


async def test_concurrency_caps_jobs_running_at_once_and_waiting_jobs_hold_no_worker_slot(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = tag()
    db = Limiter(f"db-{t}", concurrency=2)
    ids = [await client.enqueue(lt.hold, tag=t, seconds=0.15, label=str(i), limit=db) for i in range(8)]
    free = await client.enqueue(lt.hold, tag=t + "-free", seconds=0.01, label="free")
    await start_worker(TASKS, queues=["limits"], concurrency=10)
    # the unlimited job does not wait behind the six that wait for the limiter: they hold no slot
    assert await client.result(free, timeout=10) == "free"
    assert lt.running.get(t, 0) <= 2
    assert await results(client, ids) == [str(i) for i in range(8)]
    assert lt.peak[t] == 2
    infos = [await client.job(i) for i in ids]
    assert all(info.attempt == 1 for info in infos)  # waiting is not an attempt
    # first come, first served: they started in the order they were submitted
    assert lt.done[t] == [str(i) for i in range(8)]


async def test_one_semaphore_per_key(client: Client, start_worker: WorkerFactory) -> None:
    t = tag()
    per_customer = Limiter(f"cust-{t}", concurrency=1)
    ids = []
    for _ in range(4):
        for customer in ("a", "b"):
            ids.append(
                await client.enqueue(
                    lt.hold, tag=f"{t}-{customer}", seconds=0.1, limit=per_customer.by(customer)
                )
            )
            ids.append(await client.enqueue(lt.hold, tag=t, seconds=0.1, limit=per_customer.by(customer)))
    await start_worker(TASKS, queues=["limits"], concurrency=10)
    await results(client, ids)
    assert lt.peak[f"{t}-a"] == 1 and lt.peak[f"{t}-b"] == 1
    assert lt.peak[t] == 2  # one per key, the two keys at once


async def test_a_rate_limit_spaces_starts_on_redis_time(client: Client, start_worker: WorkerFactory) -> None:
    t = tag()
    api = Limiter(f"api-{t}", rate=Rate(10, per="s", burst=2))
    ids = [await client.enqueue(lt.hold, tag=t, seconds=0, limit=api) for _ in range(12)]
    await start_worker(TASKS, queues=["limits"], concurrency=10)
    await start_worker(TASKS, queues=["limits"], concurrency=10)  # two workers share the bucket
    await results(client, ids)
    starts = sorted(lt.starts[t])
    # a token bucket of 10/s, burst 2: in any window of w seconds at most 2 + 10 w starts (plus one for
    # the granularity of the clocks involved); 12 jobs need at least one second
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            window = starts[j] - first
            assert j - i + 1 <= 2 + 10 * window + 1, (i, j, window, starts)
    assert starts[-1] - starts[0] >= 0.9
    assert starts[-1] - starts[0] < 3.0  # and it does not wait much longer than it must
    assert [(await client.job(i)).attempt for i in ids] == [1] * len(ids)


async def test_the_tasks_own_limit_and_a_call_that_replaces_it(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = tag()
    ids = [await client.enqueue(lt.shared, tag=t, seconds=0.1) for _ in range(6)]
    wide = Limiter(f"wide-{t}", concurrency=5)
    more = [await client.enqueue(lt.shared, tag=t + "-wide", seconds=0.1, limit=wide) for _ in range(5)]
    await start_worker(TASKS, queues=["limits"], concurrency=10)
    await results(client, ids + more)
    assert lt.peak[t] == 2  # @task(limit=Limiter("lt-shared", concurrency=2))
    assert lt.peak[t + "-wide"] == 5


async def test_a_job_with_two_limits_takes_both_or_neither(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = tag()
    one = Limiter(f"one-{t}", concurrency=1)
    two = Limiter(f"two-{t}", concurrency=2)
    # jobs taking one and two, and jobs taking only two: never over either
    ids = []
    for _ in range(4):
        ids.append(await client.enqueue(lt.hold, tag=f"{t}-one", seconds=0.1, limit=[one, two]))
        ids.append(await client.enqueue(lt.hold, tag=f"{t}-two", seconds=0.1, limit=two))
    await start_worker(TASKS, queues=["limits"], concurrency=10)
    await results(client, ids)
    assert lt.peak[f"{t}-one"] == 1
    assert lt.peak[f"{t}-one"] + lt.peak[f"{t}-two"] <= 3
    keys = client.keys
    assert await client.redis.scard(keys.limit(f"two-{t}|", "s")) == 0  # every slot came back


async def test_retries_release_the_slot_and_count_only_real_attempts(
    client: Client, start_worker: WorkerFactory
) -> None:
    from tqflow.runtime.policies import fixed

    t = tag()
    lim = Limiter(f"retry-{t}", concurrency=1)
    flaky = await client.enqueue(lt.flaky, tag=t, fails=2, retry=fixed("50ms", attempts=3), limit=lim)
    others = [await client.enqueue(lt.hold, tag=t + "-o", seconds=0.05, limit=lim) for _ in range(3)]
    await start_worker(TASKS, queues=["limits"], concurrency=4)
    assert await client.result(flaky, timeout=10) == "ok"
    await results(client, others)
    assert (await client.job(flaky)).attempt == 3
    assert [(await client.job(i)).attempt for i in others] == [1] * len(others)


async def test_cancel_a_waiting_job_and_the_queue_moves_on(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = tag()
    lim = Limiter(f"cancel-{t}", concurrency=1)
    first = await client.enqueue(lt.hold, tag=t, seconds=0.5, label="first", limit=lim)
    waiting = await client.enqueue(lt.hold, tag=t, seconds=0.01, label="waiting", limit=lim)
    last = await client.enqueue(lt.hold, tag=t, seconds=0.01, label="last", limit=lim)
    await start_worker(TASKS, queues=["limits"], concurrency=4)
    for _ in range(200):
        if (await client.job(waiting)).state == "limited":
            break
        await asyncio.sleep(0.02)
    assert (await client.job(waiting)).state == "limited"
    assert await client.cancel(waiting) == "cancelled"
    assert await client.result(last, timeout=10) == "last"
    assert await client.result(first, timeout=10) == "first"
    assert lt.done[t] == ["first", "last"]
    assert await client.redis.llen(client.keys.limit(f"cancel-{t}|", "w")) == 0


async def test_a_dead_workers_slot_comes_back_when_its_lease_ends(
    client: Client, start_worker: WorkerFactory
) -> None:
    """A worker that started a limited job and died (it never finishes, never beats): the slot is the
    attempt's, so it comes back when the attempt is void (recovery, or the end of its lease), never
    before, and the lost job runs again and takes a slot again; nothing leaks."""
    t = tag()
    lim = Limiter(f"lease-{t}", concurrency=1)
    lost = await client.enqueue(lt.hold, tag=t, seconds=0.01, label="lost", limit=lim)
    scripts = Scripts(client.redis)
    await client.redis.xgroup_create(client.keys.stream("limits", 2), "tqflow", id="0", mkstream=True)
    started = await scripts.run(
        calls.fetch(
            client.keys, now_ms(), "dead-worker", "tok", 600, 1, [(client.keys.stream("limits", 2), 1)]
        )
    )
    assert [row[0] for row in started] == [str(lost)]
    holders = await client.redis.smembers(client.keys.limit(f"lease-{t}|", "s"))
    assert holders == {str(lost)}  # the dead attempt holds the one slot
    queued = await client.enqueue(lt.hold, tag=t, seconds=0.01, label="next", limit=lim)
    fast = ClusterSettings(heartbeat_ms=200, dead_after_ms=1000)
    await start_worker(TASKS, queues=["limits"], concurrency=4, cluster=fast)
    # the slot comes back when the attempt is void: recovery reclaims it (its worker has no registry
    # record), or its lease runs out, whichever is first; the lost job then runs again
    assert await client.result(queued, timeout=15) == "next"
    assert await client.result(lost, timeout=30) == "lost"
    info = await client.job(lost)
    assert info.attempt == 2 and await client.redis.hget(client.keys.job(lost), "lost") == "1"
    assert lt.peak[t] == 1  # never two at once (the ledger)
    assert await client.redis.scard(client.keys.limit(f"lease-{t}|", "s")) == 0  # nothing leaked


def test_bad_limiters_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        Limiter("x")
    with pytest.raises(ValueError, match="exactly one of"):
        Limiter("x", rate=Rate(1), concurrency=1)
    with pytest.raises(ValueError, match="positive integer"):
        Limiter("x", concurrency=0)
    with pytest.raises(ValueError, match="positive integer"):
        Rate(0)
    with pytest.raises(ValueError, match="burst"):
        Rate(5, burst=0)
    with pytest.raises(ValueError, match="braces"):
        Limiter("a{b}", concurrency=1)
    with pytest.raises(ValueError, match=r"'\|'"):
        Limiter("a|b", concurrency=1)
    with pytest.raises(ValueError, match="string or an integer"):
        Limiter("x", concurrency=1).by(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="given twice"):
        limits_of([Limiter("x", concurrency=1), Limiter("x", concurrency=1).by("k")])
    with pytest.raises(LimiterConflict, match="two definitions"):
        limits_of([Limiter("x", concurrency=1), Limit(Limiter("x", concurrency=2), "k")])
    with pytest.raises(TypeError, match="limit= takes"):
        limits_of(["x"])  # type: ignore[list-item]
    assert Rate(100, per="m").period_ms == 60_000
    assert Rate(7, per="10s").period_ms == 10_000


async def test_two_tasks_defining_one_limiter_differently_cannot_be_published(client: Client) -> None:
    @task(name="conflict.a", limit=Limiter("same", concurrency=1))
    def a() -> None: ...

    @task(name="conflict.b", limit=Limiter("same", concurrency=2))
    def b() -> None: ...

    with pytest.raises(LimiterConflict, match="'same' has two definitions among the worker's tasks"):
        await catalog.publish(client.redis, client.keys, {"conflict.a": a, "conflict.b": b})


async def test_a_job_sent_by_name_takes_the_published_tasks_limit(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = tag()
    await catalog.publish(client.redis, client.keys, TASKS)
    ids = [await client.enqueue("limit_tasks.shared", tag=t, seconds=0.1) for _ in range(5)]
    await start_worker(TASKS, queues=["limits"], concurrency=10)
    await results(client, ids)
    assert lt.peak[t] == 2


def test_the_limit_and_fair_keys_are_pinned() -> None:
    keys = Keys("prod")
    assert keys.limit("api|c7", "b") == "{prod}:limit:api|c7:b"
    assert keys.limit("db|", "s") == "{prod}:limit:db|:s"
    assert keys.limit("db|", "w") == "{prod}:limit:db|:w"
    assert (keys.limit_due, keys.limit_keys, keys.limit_defs) == (
        "{prod}:limit:due",
        "{prod}:limit:keys",
        "{prod}:limit:defs",
    )
    assert keys.fair("etl", 2) == "{prod}:fair:etl:2"
    assert keys.fair_list("etl", 2, "tenant-1") == "{prod}:fair:etl:2:k:tenant-1"
    assert keys.fair_state("etl", 2) == "{prod}:fair:etl:2:s"
