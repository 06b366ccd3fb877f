"""Leader election with epochs, and the scheduler's exactly-once ticks across a failover."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from cluster_helpers import nap_plan, nap_tasks
from redis.asyncio import Redis

from tqflow.plan import CatchupPlan, Plan, TriggerPlan
from tqflow.runtime.client import Client
from tqflow.runtime.cluster.leader import Leader, current_leader
from tqflow.runtime.cluster.scheduler import Scheduler
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.runs import TERMINAL_RUN_STATES, now_ms
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.testing import MovableClock

from helpers import WorkerFactory

EVERY_SECOND = TriggerPlan(name="every:0", kind="every", every_ms=1000)
TEN_MINUTES = 600_000


async def test_one_leader_at_a_time_and_a_new_epoch_after_it_lapses(client: Client, redis: Redis) -> None:
    keys = ClusterKeys(client.keys)
    first, second = Leader(redis, keys, "a", 300), Leader(redis, keys, "b", 300)
    epoch = await first.campaign()
    assert epoch > 0 and await second.campaign() == 0
    assert await current_leader(redis, keys) == ("a", epoch)
    await asyncio.sleep(0.4)  # `a` is paused past its lease
    assert await second.campaign() == epoch + 1
    assert await first.campaign() == 0  # it comes back: its old epoch is refused
    assert not first.is_leader() and second.is_leader()
    await second.campaign(resign=True)
    assert await current_leader(redis, keys) is None


async def test_a_deposed_leader_cannot_fire_a_tick(client: Client, redis: Redis) -> None:
    await client.deploy(nap_plan(EVERY_SECOND))
    keys = ClusterKeys(client.keys)
    old, new = Leader(redis, keys, "old", 200), Leader(redis, keys, "new", 5000)
    await old.campaign()
    stale_holder = old.holder
    await asyncio.sleep(0.3)
    await new.campaign()
    settings = ClusterSettings()
    stale = Scheduler(redis, keys, settings, lambda: stale_holder)
    await redis.hset(keys.trigger("nap", "every:0"), "last", now_ms() - 1500)
    await stale.once()
    assert stale.fired == 0
    fresh = Scheduler(redis, keys, settings, lambda: new.holder)
    await fresh.once()
    assert fresh.fired == 1
    await fresh.once()
    assert fresh.fired == 1  # the same tick is never fired twice


async def test_ticks_fire_exactly_once_across_a_leader_failover(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    await client.deploy(nap_plan(EVERY_SECOND))
    fast = ClusterSettings(heartbeat_ms=100, dead_after_ms=400, leader_lease_ms=600)
    workers = [await start_worker(tasks, cluster=fast) for _ in range(2)]
    await asyncio.sleep(2.5)
    leader = next(w for w in workers if w.cluster.leader.is_leader())
    leader.cluster._tasks[1].cancel()  # its leader loop dies (the process would be gone)
    leader.cluster.leader.epoch = 0  # so it stops leading, and its lease lapses
    await asyncio.sleep(2.5)
    # The count first: a tick may fire between the two reads (the workers run on), never before.
    trigger = await redis.hgetall(ClusterKeys(client.keys).trigger("nap", "every:0"))
    ticks = await fired_ticks(client, redis)
    assert len(ticks) == len(set(ticks)) >= 3, ticks
    assert ticks == list(range(ticks[0], ticks[-1] + 1000, 1000)), ticks  # no gap, no duplicate
    assert int(trigger["fired"]) <= len(ticks) <= int(trigger["fired"]) + 1, (trigger, ticks)


async def test_missed_ticks_are_counted_and_overlapping_runs_skipped(
    client: Client, redis: Redis, start_worker: WorkerFactory, tqflow_clock: MovableClock
) -> None:
    _, tasks = nap_tasks()
    trigger = TriggerPlan(
        name="every:0", kind="every", every_ms=TEN_MINUTES, catchup=CatchupPlan(kind="none")
    )
    await client.deploy(with_nap_ms(nap_plan(trigger), 1500))
    key = ClusterKeys(client.keys).trigger("nap", "every:0")
    tqflow_clock.advance_to(next_tick(now_ms()) + TEN_MINUTES // 2)  # halfway between two ticks
    await redis.hset(key, "last", now_ms() - 10 * TEN_MINUTES)  # ten ticks were missed while nobody led
    await start_worker(tasks)
    state = await until(redis, key, lambda s: "skipped" in s)
    assert state["skipped"] == "10" and "fired" not in state  # missed (catch-up none): counted, none run
    skipped = 10
    tqflow_clock.advance_to(next_tick(now_ms()) + 50)  # on time: this one runs (1.5 s of real time)
    await until(redis, key, lambda s: s.get("fired") == "1")
    tqflow_clock.advance_to(next_tick(now_ms()) + 50)  # the run is still going: this tick is skipped
    state = await until(redis, key, lambda s: int(s.get("skipped", 0)) == skipped + 1)
    assert state["fired"] == "1"


async def fired_ticks(client: Client, redis: Redis) -> list[int]:
    ticks = []
    for run_id in await redis.zrange(client.keys.runs, 0, -1):
        tick = await redis.hget(client.keys.run(run_id), "tick")
        if tick is not None:
            ticks.append(int(tick))
    return sorted(ticks)


async def test_overlap_queue_holds_a_tick_until_the_previous_run_ends(
    client: Client, redis: Redis, start_worker: WorkerFactory, tqflow_clock: MovableClock
) -> None:
    _, tasks = nap_tasks()
    trigger = TriggerPlan(name="every:0", kind="every", every_ms=TEN_MINUTES, overlap="queue")
    await client.deploy(with_nap_ms(nap_plan(trigger), 700))
    await start_worker(tasks)
    key = ClusterKeys(client.keys).trigger("nap", "every:0")
    await until(redis, key, lambda s: "last" in s)  # the leader has seen the trigger
    tqflow_clock.advance_to(next_tick(now_ms()) + 50)
    await until(redis, key, lambda s: s.get("fired") == "1")
    tqflow_clock.advance_to(next_tick(now_ms()) + 50)  # while the first run naps: held, not skipped
    await until(redis, key, lambda s: s.get("fired") == "2", timeout=10)
    runs = []
    for run_id in await redis.zrange(client.keys.runs, 0, -1):
        created, finished = await redis.hmget(client.keys.run(run_id), "created", "finished")
        runs.append((int(created), int(finished) if finished else None))
    assert len(runs) == 2
    for (_, finished), (created, _) in itertools.pairwise(runs):
        assert finished is not None and created >= finished  # never two runs of the trigger at once
    state = await redis.hgetall(key)
    assert "skipped" not in state


async def test_ticks_ten_minutes_apart_fire_as_the_clock_reaches_them(
    client: Client, redis: Redis, start_worker: WorkerFactory, tqflow_clock: MovableClock
) -> None:
    _, tasks = nap_tasks()
    await client.deploy(nap_plan(TriggerPlan(name="every:0", kind="every", every_ms=TEN_MINUTES)))
    await start_worker(tasks)
    key = ClusterKeys(client.keys).trigger("nap", "every:0")
    await until(redis, key, lambda s: "last" in s)  # the leader has seen the trigger
    first = next_tick(now_ms())
    tqflow_clock.advance_to(first - 1_000)
    await asyncio.sleep(0.3)
    assert "fired" not in await redis.hgetall(key)  # a second early: nothing
    for n in range(3):
        tqflow_clock.advance_to(first + n * TEN_MINUTES + 50)
        state = await until(redis, key, lambda s, n=n: s.get("fired") == str(n + 1))
        await run_ended(redis, client, state["run"])  # else the next tick would overlap it (skipped)
    assert await fired_ticks(client, redis) == [first, first + TEN_MINUTES, first + 2 * TEN_MINUTES]


async def run_ended(redis: Redis, client: Client, run_id: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while await redis.hget(client.keys.run(run_id), "state") not in TERMINAL_RUN_STATES:
        assert time.monotonic() < deadline, f"run {run_id} never ended"
        await asyncio.sleep(0.02)


def next_tick(after_ms: int) -> int:
    """The next `every 10m` tick, worked out here: `every` ticks are multiples of the interval since the
    epoch, so every leader agrees on them (runtime/cluster/schedule.py)."""
    return after_ms - after_ms % TEN_MINUTES + TEN_MINUTES


def with_nap_ms(plan: Plan, ms: int) -> Plan:
    flow = plan.flows["nap"]
    params = [p.model_copy(update={"default": {"lit": ms}}) if p.name == "ms" else p for p in flow.params]
    return plan.model_copy(update={"flows": {"nap": flow.model_copy(update={"params": params})}})


async def until(
    redis: Redis, key: str, ok: Callable[[dict[str, str]], bool], timeout: float = 5
) -> dict[str, str]:
    """The trigger's state once `ok` holds (real seconds: what the clock moved, the worker still does)."""
    deadline = time.monotonic() + timeout
    state: dict[str, str] = await redis.hgetall(key)
    while not ok(state):
        assert time.monotonic() < deadline, f"the trigger's state stayed {state}"
        await asyncio.sleep(0.02)
        state = await redis.hgetall(key)
    return state
