"""A namespace of several partitions on the session's Redis (one server, or any TQFLOW_TEST_TOPOLOGY): where
jobs go and the ids callers see (runtime/partitions.py), and one worker's concurrency over all of them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import zlib
from collections.abc import AsyncIterator

import pytest

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.partitions import PartitionError, Spread, external_id, split_id, unique_partition
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.worker import Worker, WorkerSettings
from tqflow.runtime.worker.slots import Slots

from helpers import FLOWS

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


def test_ids_name_their_partition() -> None:
    assert external_id(None, "default.2.1-0") == "default.2.1-0"
    assert external_id(2, "default.2.1-0") == "p2:default.2.1-0"
    assert split_id("p2:default.2.1-0", 3) == (2, "default.2.1-0")
    assert split_id("p2:x", 1) == (None, "p2:x")  # one partition: an id is the control slot's own
    with pytest.raises(PartitionError, match="names no partition of this namespace's 3"):
        split_id("p7:x", 3)
    with pytest.raises(PartitionError, match="ids look like p0:"):
        split_id("0123456789abcdef", 3)


def test_where_a_job_goes() -> None:
    spread = Spread(4)
    firsts = [spread.place(None, [])[0] for _ in range(8)]
    assert sorted(firsts) == [0, 0, 1, 1, 2, 2, 3, 3]  # round robin
    assert all((b - a) % 4 == 1 for a, b in itertools.pairwise(firsts))
    assert spread.place("k1", []) == (zlib.crc32(b"k1") % 4, [])
    assert unique_partition("k1", 4) == zlib.crc32(b"k1") % 4
    assert spread.place(None, ["p3:a", "p3:b"]) == (3, ["a", "b"])
    with pytest.raises(PartitionError, match=r"partitions \[1, 3\]"):
        spread.place(None, ["p3:a", "p1:b"])
    key = next(f"k{i}" for i in range(100) if unique_partition(f"k{i}", 4) != 3)
    with pytest.raises(PartitionError, match="must find them in one partition"):
        spread.place(key, ["p3:a"])


@contextlib.asynccontextmanager
async def running_worker(url: str, namespace: str, concurrency: int) -> AsyncIterator[Worker]:
    redis = connect(url)
    worker = Worker(redis, TASKS, namespace, WorkerSettings(block_ms=100, concurrency=concurrency))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
        await redis.aclose()


async def test_one_workers_concurrency_holds_over_its_partitions(redis_url: str, namespace: str) -> None:
    client = Client.from_url(redis_url, namespace)
    try:
        await client.create_partitions(3)
        ids = [await client.enqueue(jt.sleeper, seconds=0.3) for _ in range(12)]
        assert {i.split(":")[0] for i in ids} == {"p0", "p1", "p2"}
        assert await client.reprioritize(ids[1], "critical") == "moved"  # in its own partition
        assert (await client.job(ids[1])).priority == "critical"
        async with running_worker(redis_url, namespace, concurrency=2) as worker:
            most = 0
            results = asyncio.gather(*(client.result(i, timeout=60) for i in ids))
            while not results.done():
                most = max(most, worker.slots.held())  # jobs whose body has not ended
                await asyncio.sleep(0.005)
            assert await results == ["woke"] * 12
            assert len(worker.partition_workers) == 3
            assert worker.completed == 12
        assert most == 2  # never more than the concurrency at once, and it was used
    finally:
        await client.close()


def test_the_same_lean_id_in_two_partitions_holds_two_slots() -> None:
    # two partitions' streams can hand out the same entry id, so the same lean id, at once
    slots = Slots(4)
    same = "default.2.1733140000000-0"
    slots.take(same, 0)
    slots.take(same, 1)
    assert (slots.held(), slots.free()) == (2, 2)
    slots.release(same, 0)
    slots.release(same, 0)  # released again (its end, then its handler): frees nothing more
    assert (slots.held(), slots.free()) == (1, 3)
    slots.release(same, 1)
    assert not slots.any_held()


async def fetcher_like(
    slots: Slots, has_jobs: bool, stop: asyncio.Event, name: str, turns: list[str], rnd: random.Random
) -> None:
    """What a partition's fetcher does with the shared slots (fetcher.py): reserve what is free, fetch
    (a round trip), give the reservation back; then, having found nothing, block on its streams holding
    one slot while more are free than fetchers wait, else wait for room behind the others."""
    while not stop.is_set():
        free = slots.free()
        if free <= 0:
            await slots.wait_for_room(1.0)
            continue
        slots.reserve(free)
        await asyncio.sleep(rnd.uniform(0.0005, 0.003))  # the fetch call
        slots.unreserve(free)
        if has_jobs:  # its partition holds jobs: it got its turn
            turns.append(name)
            stop.set()
            return
        if slots.free() > slots.waiting:
            slots.reserve(1)
            await asyncio.sleep(0.1)  # the blocking read
            slots.unreserve(1)
        else:
            await slots.wait_for_room(0.1)


@pytest.mark.parametrize("seed", range(8))
async def test_a_busy_partitions_fetcher_gets_a_turn_while_empty_ones_fetch_nothing(seed: int) -> None:
    # Three fetchers of empty partitions and one whose partition holds jobs share 2 slots. When one event
    # woke every waiter, the empty ones reserved the slots in turn each time the busy one looked, and it
    # waited again: its jobs never started (3 of 8 seeds here; 1 run in 4 of the real-Redis test above,
    # a job of one partition never finished). Waiters now take turns, oldest first.
    rnd = random.Random(seed)
    slots = Slots(2)
    stop, turns = asyncio.Event(), list[str]()
    idle = [asyncio.create_task(fetcher_like(slots, False, stop, f"e{i}", turns, rnd)) for i in range(3)]
    await asyncio.sleep(rnd.uniform(0, 0.01))  # the empty ones spin first
    busy = asyncio.create_task(fetcher_like(slots, True, stop, "busy", turns, rnd))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.5)
    finally:
        stop.set()
        for task in [*idle, busy]:
            task.cancel()
        await asyncio.gather(*idle, busy, return_exceptions=True)
    assert turns == ["busy"]
