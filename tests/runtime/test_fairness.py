"""Fair share across keys (lua/fair.lua): jobs of one queue and level served in weighted round robin
across their fair keys instead of first come, first served. Shares are counted from the order the jobs
ran in (a ledger in the task's process), never from the scheduler's own state."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from tqflow.runtime.client import Client
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.sync import SyncClient

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["limit_tasks"], [FLOWS])
import limit_tasks as lt  # noqa: E402 - loaded from tests/flows above

WINDOW = 8  # fair.lua FAIR_WINDOW: entries fed onto the stream ahead of the workers


async def test_weights_3_2_1_share_the_starts_50_33_17(client: Client, start_worker: WorkerFactory) -> None:
    t = uuid.uuid4().hex[:10]
    ids = []
    for key, weight in (("a", 3), ("b", 2), ("c", 1)):  # a's jobs all first: FIFO would run them first
        ids += await client.enqueue_many(
            [(lt.hold, {"tag": t, "seconds": 0, "label": key}) for _ in range(120)],
            fair_key=key,
            weight=weight,
        )
    stats = await Inspector(client.redis, client.keys.namespace).queue("limits")
    assert stats.waiting == 360  # the 8 fed and the 352 in their keys' lists
    assert await client.redis.zcard(client.keys.fair("limits", 2)) == 3
    await start_worker(TASKS, queues=["limits"], concurrency=1, fetch_batch=1)
    for i in ids:
        await client.result(i, timeout=30)
    order = lt.done[t]
    contested = order[WINDOW : WINDOW + 120]  # every key still has jobs waiting throughout
    shares = Counter(contested)
    assert abs(shares["a"] - 60) <= 3 and abs(shares["b"] - 40) <= 3 and abs(shares["c"] - 20) <= 3, shares
    assert sorted(order) == sorted(["a"] * 120 + ["b"] * 120 + ["c"] * 120)  # nothing lost or doubled


async def test_a_new_key_is_served_at_once_not_after_the_backlog(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = uuid.uuid4().hex[:10]
    big = await client.enqueue_many(
        [(lt.hold, {"tag": t, "seconds": 0.005, "label": "big"}) for _ in range(200)], fair_key="tenant-big"
    )
    await start_worker(TASKS, queues=["limits"], concurrency=1, fetch_batch=1)
    small = await client.enqueue(lt.hold, tag=t, seconds=0, label="small", fair_key="tenant-small")
    await client.result(small, timeout=10)
    position = lt.done[t].index("small")
    assert position < 40, position  # behind the window and a turn or two, not behind 200 jobs
    for i in big:
        await client.result(i, timeout=30)


async def test_cancel_and_reprioritize_a_fair_job_waiting_in_its_list(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = uuid.uuid4().hex[:10]
    ids = await client.enqueue_many(
        [(lt.hold, {"tag": t, "seconds": 0, "label": str(i)}) for i in range(20)], fair_key="k"
    )
    assert await client.cancel(ids[15]) == "cancelled"  # not fed yet: in its key's list
    assert await client.reprioritize(ids[16], "high") == "moved"
    await start_worker(TASKS, queues=["limits"], concurrency=2)
    for i in ids[:15] + ids[16:]:
        await client.result(i, timeout=20)
    assert "15" not in lt.done[t] and len(lt.done[t]) == 19
    assert lt.done[t].index("16") < lt.done[t].index("14")  # high goes first


async def test_bad_fair_options_say_what_is_wrong(client: Client) -> None:
    with pytest.raises(ValueError, match="give both"):
        await client.enqueue(lt.hold, tag="x", weight=2)
    with pytest.raises(ValueError, match="positive number"):
        await client.enqueue(lt.hold, tag="x", fair_key="k", weight=0)
    with pytest.raises(ValueError, match="string or an integer"):
        await client.enqueue(lt.hold, tag="x", fair_key=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-200 characters"):
        await client.enqueue(lt.hold, tag="x", fair_key="k" * 201)


async def test_the_sync_client_sends_fair_and_limited_jobs_too(
    client: Client, start_worker: WorkerFactory, redis_url: str
) -> None:
    from tqflow.runtime.limits import Limiter

    t = uuid.uuid4().hex[:10]
    sync = SyncClient(redis_url, client.keys.namespace)
    try:
        lim = Limiter(f"sync-{t}", concurrency=1)
        ids = [sync.enqueue(lt.hold, tag=t, seconds=0.05, limit=lim, fair_key=f"k{i % 2}") for i in range(4)]
        ids += sync.enqueue_many([(lt.hold, {"tag": t, "seconds": 0.05})] * 2, limit=lim)
    finally:
        sync.close()
    await start_worker(TASKS, queues=["limits"], concurrency=6)
    for i in ids:
        await client.result(i, timeout=20)
    assert lt.peak[t] == 1
