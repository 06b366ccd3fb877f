"""F18: a worker whose host clock runs 30 s ahead or behind (RELIABILITY.md), simulated in its process
(`fault_worker.py --skew-ms`, every wall-clock read skewed, as libfaketime does). Leases are times written by
one worker and compared by another, and cron ticks are due by the leader's clock: a leader 30 s ahead saw
every other worker's lease as expired and fired ticks 30 s early; a worker 30 s behind renewed its leases
into the past. Workers now read Redis's clock (TIME) and correct their own by the difference, so no live
lease is stolen and no tick fires early.

Slice: 60 jobs, 4 s of ticks; `TQFLOW_FAULT_SCALE=full`: 300 jobs, 30 s of ticks.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from harness import FULL, Ledger, Workers, check, fault_plan, seeded
from redis.asyncio import Redis

from tqflow.plan import CatchupPlan, TriggerPlan
from tqflow.runtime.client import Client
from tqflow.runtime.cluster.leader import current_leader
from tqflow.runtime.store.cluster_keys import ClusterKeys

pytestmark = pytest.mark.faults
SKEW_MS = 30_000


async def leader_pid(redis: Redis, client: Client) -> int | None:
    leader = await current_leader(redis, ClusterKeys(client.keys))
    if leader is None:
        return None
    parts = leader[0].split("-")
    return int(parts[-2]) if len(parts) >= 2 and parts[-2].isdigit() else None


async def wait_leader(redis: Redis, client: Client, pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while await leader_pid(redis, client) != pid:
        assert time.monotonic() < deadline, "the skewed worker never led"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("skewed", ["leader-ahead", "worker-behind"])
async def test_f18_skewed_clock_steals_no_live_lease(
    skewed: str, client: Client, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    rng = seeded(f"F18-{skewed}")
    count = 300 if FULL else 60
    workers = Workers(redis_url, client.keys.namespace, tmp_path / "ledger", stderr=tmp_path / "workers.log")
    skew = ["--skew-ms", str(SKEW_MS if skewed == "leader-ahead" else -SKEW_MS)]
    try:
        if skewed == "leader-ahead":  # the skewed worker leads: it judges everyone's leases
            lead = workers.start(*skew)
            await workers.ready(redis, client.keys, 1)
            workers.start()
        else:  # a normal leader judges the leases the skewed worker renews
            lead = workers.start()
            await workers.ready(redis, client.keys, 1)
            workers.start(*skew)
        await workers.ready(redis, client.keys, 2)
        await wait_leader(redis, client, lead.pid)
        jobs: dict[str, str] = {}
        for n in range(count):
            job = await client.enqueue("fault_tasks.work", key=f"s{n}", ms=rng.randint(300, 1500))
            jobs[job] = f"s{n}"
        deadline = time.monotonic() + 120
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {j: (await client.job(j)).state for j in jobs}
            if all(s in ("succeeded", "dead") for s in states.values()):
                break
            await asyncio.sleep(0.2)
        ledger = Ledger.read(workers.ledger)
        figures = await check(redis, client.keys, jobs, ledger, workers.killed, states)
        alive = len(workers.alive())
    finally:
        workers.stop_all()
    print(f"[F18-{skewed}] skew={SKEW_MS / 1000:.0f}s {figures.line()} workers_alive={alive}/2")
    assert alive == 2
    assert figures.duplicated == 0 and figures.stale_refused == 0, figures  # no live lease stolen
    assert figures.lost == 0 and figures.pending_left == 0, figures


async def test_f18_leader_ahead_fires_no_tick_early(
    client: Client, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    seeded("F18-ticks")
    seconds = 30.0 if FULL else 4.0  # ticks 30 s early would all show in the first second
    trigger = TriggerPlan(
        name="every:1",
        kind="every",
        every_ms=1000,
        catchup=CatchupPlan(kind="all", within_ms=60_000),
        overlap="allow",
        params={"key": {"lit": "tick"}, "ms": {"lit": 1}},
    )
    plan = fault_plan()
    flow = plan.flows["fault"].model_copy(update={"triggers": [trigger]})
    await client.deploy(plan.model_copy(update={"flows": {"fault": flow}}))
    workers = Workers(redis_url, client.keys.namespace, tmp_path / "ledger")
    early: list[float] = []
    ticks: set[int] = set()
    try:
        lead = workers.start("--skew-ms", str(SKEW_MS))
        await workers.ready(redis, client.keys, 1)
        await wait_leader(redis, client, lead.pid)
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            now = time.time() * 1000  # the true clock
            for run in await redis.zrange(client.keys.runs, 0, -1):
                tick = await redis.hget(client.keys.run(run), "tick")
                if tick is not None and int(tick) not in ticks:
                    ticks.add(int(tick))
                    if int(tick) > now + 500:  # due later than now: fired early
                        early.append((int(tick) - now) / 1000)
            await asyncio.sleep(0.2)
    finally:
        workers.stop_all()
    print(
        f"[F18-ticks] leader {SKEW_MS / 1000:.0f}s ahead, {seconds:.0f}s: ticks={len(ticks)}"
        f" fired_early={len(early)} (by up to {max(early, default=0):.1f}s)"
    )
    assert ticks and not early
