"""Priority levels: critical first, weighted shares below it, aging so batch is never starved."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from tqflow.runtime.client import Client
from tqflow.runtime.priorities import FetchPlanner
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.store.keys import Keys

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


def test_shares_follow_the_weights_one_slot_at_a_time() -> None:
    planner = FetchPlanner(Keys("t"), ["q"], {"high": 8, "normal": 4, "low": 2, "batch": 1})
    picks: Counter[int] = Counter()
    for _ in range(150):
        shares = planner.shares(1)
        picks.update(level for level, n in shares.items() if n)
    assert picks == {1: 80, 2: 40, 3: 20, 4: 10}


async def test_observed_shares_match_the_weights(client: Client, start_worker: WorkerFactory) -> None:
    tag = client.keys.namespace
    levels = ["critical", "high", "normal", "low", "batch"]
    for level in levels:
        count = 10 if level == "critical" else 150
        await client.enqueue_many(
            [(jt.record, {"tag": f"{tag}:{level}"}) for _ in range(count)], priority=level
        )
    await start_worker(TASKS, concurrency=1, fetch_batch=1)
    for _ in range(400):
        if sum(1 for s in jt.seen if s.startswith(tag)) >= 160:
            break
        await asyncio.sleep(0.05)
    order = [s.split(":")[1] for s in jt.seen if s.startswith(tag)][:160]
    assert order[:10] == ["critical"] * 10
    shares = Counter(order[10:])
    expected = {"high": 80, "normal": 40, "low": 20, "batch": 10}
    for level, want in expected.items():
        assert abs(shares[level] - want) <= 4, (shares, expected)


async def test_aging_keeps_batch_from_starving(
    client: Client, start_worker: WorkerFactory, redis: object
) -> None:
    batch = await client.enqueue(jt.record, tag="late", priority="batch")
    enqueued = time.time()
    await client.enqueue_many([(jt.sleeper, {"seconds": 0.005}) for _ in range(1500)], priority="high")
    weights = {"high": 10_000, "normal": 1, "low": 1, "batch": 1}
    await start_worker(TASKS, concurrency=1, fetch_batch=1, weights=weights, aging_ms=200)
    assert await client.result(batch, timeout=20) == "late"
    info = await client.job(batch)
    assert info.started_ms is not None
    waited = info.started_ms / 1000 - enqueued
    # 1,500 high jobs of 5 ms would hold it back 7.5 s; aging moves it to critical after 200 ms
    assert waited < 2.0, waited
    assert info.priority == "critical"
