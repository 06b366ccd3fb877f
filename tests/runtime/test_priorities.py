"""Priority levels: critical first, weighted shares below it, aging so batch is never starved."""

from __future__ import annotations

import asyncio
import random
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
    planner = FetchPlanner(Keys("t"), ["q"], {"critical": 0, "high": 8, "normal": 4, "low": 2, "batch": 1})
    picks: Counter[int] = Counter()
    for _ in range(150):
        shares = planner.shares(1)
        picks.update(level for level, n in shares.items() if n)
    assert picks == {1: 80, 2: 40, 3: 20, 4: 10}
    # by default critical has a weight too (32): 32 of every 47 slots when every level has work
    planner = FetchPlanner(Keys("t"), ["q"], {"high": 8, "normal": 4, "low": 2, "batch": 1})
    picks = Counter()
    for _ in range(47 * 4):
        picks.update(level for level, n in planner.shares(1).items() if n)
    assert picks == {0: 128, 1: 32, 2: 16, 3: 8, 4: 4}


def reference_shares(weights: list[tuple[int, int]], credits: dict[int, int], free: int) -> dict[int, int]:
    """The smooth weighted round-robin slot by slot, its credits carried over (what shares() computes)."""
    total = sum(w for _, w in weights)
    counts = {level: 0 for level, _ in weights}
    for _ in range(free):
        for level, weight in weights:
            credits[level] += weight
        best = max(credits, key=lambda level: (credits[level], -level))
        credits[best] -= total
        counts[best] += 1
    return counts


def test_shares_are_the_round_robins_whatever_the_fetch_sizes() -> None:
    """shares() reads the next picks off one computed period; the same counts as running the round-robin
    slot by slot, over fetches of every size (below, at and past a period)."""
    rng = random.Random(12)
    for weights in (
        {},
        {"critical": 0, "high": 8, "normal": 4, "low": 2, "batch": 1},
        {"critical": 1, "high": 3, "batch": 7},
        {"normal": 1, "low": 1},
        {"high": 100},
        {"high": 5000, "batch": 3},  # past PERIOD_CAP: run slot by slot
    ):
        planner = FetchPlanner(Keys("t"), ["q"], weights)
        credits = {level: 0 for level, _ in planner.weights}
        for _ in range(2000):
            free = rng.choice([0, 1, 2, 3, 5, 46, 47, 48, 94, 100, 250])
            assert planner.shares(free) == reference_shares(planner.weights, credits, free), weights


async def test_observed_shares_match_the_weights(client: Client, start_worker: WorkerFactory) -> None:
    tag = client.keys.namespace
    levels = ["critical", "high", "normal", "low", "batch"]
    for level in levels:
        count = 10 if level == "critical" else 150
        await client.enqueue_many(
            [(jt.record, {"tag": f"{tag}:{level}"}) for _ in range(count)], priority=level
        )
    strict = {"critical": 0, "high": 8, "normal": 4, "low": 2, "batch": 1}  # critical first, always
    await start_worker(TASKS, concurrency=1, fetch_batch=1, weights=strict)
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
    weights = {"critical": 0, "high": 10_000, "normal": 1, "low": 1, "batch": 1}
    await start_worker(TASKS, concurrency=1, fetch_batch=1, weights=weights, aging_ms=200)
    assert await client.result(batch, timeout=20) == "late"
    info = await client.job(batch)
    assert info.started_ms is not None
    waited = info.started_ms / 1000 - enqueued
    # 1,500 high jobs of 5 ms would hold it back 7.5 s; aging moves it to critical after 200 ms
    assert waited < 2.0, waited
    assert info.priority == "critical"


def test_the_starvation_bound_holds_for_any_weights_and_fetch_sizes() -> None:
    """Seeded property: with every level backlogged, a level never waits more than `bound(level)` slot
    assignments (give or take what one fetch hands out at once), and that bound is at most 2 * ceil(S / w).
    The assignments are replayed from the plans the planner gives, the bound from its own round-robin run
    twice over a period: the check is the planner against the formula of docs/runtime.md."""
    rng = random.Random(16)
    for _ in range(200):
        weights = {"critical": rng.randint(1, 40), "high": rng.randint(1, 12), "normal": rng.randint(1, 8)}
        weights.update({"low": rng.randint(1, 4), "batch": rng.randint(1, 3)})
        planner = FetchPlanner(Keys("t"), ["q"], weights)
        total = sum(weights.values())
        waited = dict.fromkeys(range(5), 0)
        most = dict.fromkeys(range(5), 0)
        biggest_fetch = 1
        for _ in range(3 * total):
            free = rng.randint(1, 4)
            biggest_fetch = max(biggest_fetch, free)
            plan = planner.plan(free)
            for level, count in ((int(s.rsplit(":", 1)[1]), c) for s, c in plan):
                for _ in range(count):  # the slots go out in level order within a fetch
                    for other in waited:
                        waited[other] += 1
                    most[level] = max(most[level], waited[level])
                    waited[level] = 0
        for level, name in enumerate(("critical", "high", "normal", "low", "batch")):
            bound = planner.bound(level)
            assert bound is not None and bound <= 2 * -(-total // weights[name]), (weights, level)
            # one fetch hands its slots out in level order, at once: a pick can move by up to a fetch's
            # size at either end of a gap
            assert most[level] <= bound + 2 * (biggest_fetch - 1), (weights, level, most[level], bound)


def test_a_strict_critical_level_leaves_no_bound_below_it() -> None:
    planner = FetchPlanner(Keys("t"), ["q"], {"critical": 0, "high": 8, "normal": 4, "low": 2, "batch": 1})
    assert planner.bound(0) == 1 and planner.bound(4) is None
    default = FetchPlanner(Keys("t"), ["q"], {"high": 8, "normal": 4, "low": 2, "batch": 1})
    assert [default.bound(level) for level in range(5)] == [2, 6, 13, 24, 47]  # docs/runtime.md's table


async def test_a_batch_job_starts_within_the_bound_under_a_flood_of_critical_jobs(
    client: Client, start_worker: WorkerFactory
) -> None:
    """The stated bound (docs/runtime.md): ceil(G / C) job durations, G = 47 for batch by default, C the
    worker's concurrency. 600 critical jobs of 20 ms on 2 slots would hold it back 6 s without it."""
    await client.enqueue_many([(jt.sleeper, {"seconds": 0.02}) for _ in range(600)], priority="critical")
    await start_worker(TASKS, concurrency=2, fetch_batch=2)
    await asyncio.sleep(0.3)  # the flood is running
    enqueued = time.time()
    batch = await client.enqueue(jt.record, tag="starved?", priority="batch")
    assert await client.result(batch, timeout=20) == "starved?"
    info = await client.job(batch)
    assert info.started_ms is not None
    waited = info.started_ms / 1000 - enqueued
    bound = -(-47 // 2) * 0.02  # 0.48 s of 20 ms jobs; the sleeps overrun on a loaded machine
    assert waited < 3 * bound + 0.5, waited
    remaining = await client.redis.xlen(client.keys.stream("default", 0))
    assert remaining > 100  # the critical flood was still going when it started
