"""finish_many drops a batch's stream entries with XTRIM MINID below the oldest entry still pending, and
XDEL for the rest (lua/common.lua drop_acked): whatever order attempts end in, across stream nodes (100
entries each by default), exactly the entries of the attempts that ended are gone; entries still queued or
pending stay."""

from __future__ import annotations

import contextlib
import random

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts


async def entries(redis: Redis, stream: str) -> list[str]:
    return [str(eid) for eid, _ in await redis.xrange(stream) or []]


async def succeed(scripts: Scripts, keys: Keys, rows: list[list[object]]) -> list[str]:
    """End the attempts of these fetched rows as successes in one finish_many, as a worker does."""
    attempts = [(r[0], r[1], "succeeded", "J-|0", 0, "", 1_000, r[3], r[4], "") for r in rows]
    return list(await scripts.run(calls.finish_many(keys, 2_000, 60_000, attempts, "w")))


async def test_only_the_ended_attempts_entries_leave_the_stream(redis: Redis, namespace: str) -> None:
    keys, scripts = Keys(namespace), Scripts(redis)
    stream = keys.stream("default", 2)
    with contextlib.suppress(ResponseError):
        await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(330):
            pipe.xadd(stream, {"t": "t.noop", "p": f"J-|{i}"})
        queued = list(await pipe.execute())
    running: list[list[object]] = []
    for worker, count in (("w1", 120), ("w2", 100), ("w3", 60)):  # 280 delivered, 50 left queued
        call = calls.fetch(keys, 1_000, worker, f"{worker}.", 60_000, count, [(stream, count)])
        running += await scripts.run(call)
    assert len(running) == 280
    rng = random.Random(12)
    ended: set[str] = set()
    while running:
        rng.shuffle(running)
        size = rng.randint(1, 40)
        batch, running = running[:size], running[size:]
        batch_ids = {str(row[1])[1:] for row in batch}
        assert await succeed(scripts, keys, batch) == ["succeeded"] * len(batch)
        ended |= batch_ids
        assert await entries(redis, stream) == [e for e in queued if e not in ended]
    pending = await redis.xpending(stream, keys.group)
    assert pending["pending"] == 0
    assert await entries(redis, stream) == queued[280:]  # the queued ones, untouched


async def test_a_batch_with_an_entry_no_longer_pending_deletes_its_own(redis: Redis, namespace: str) -> None:
    keys, scripts = Keys(namespace), Scripts(redis)
    stream = keys.stream("default", 2)
    with contextlib.suppress(ResponseError):
        await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
    eids = [await redis.xadd(stream, {"t": "t.noop", "p": f"J-|{i}"}) for i in range(6)]
    rows = await scripts.run(calls.fetch(keys, 1_000, "w1", "w1.", 60_000, 4, [(stream, 4)]))
    assert await succeed(scripts, keys, rows[:2]) == ["succeeded"] * 2
    # the same two again (a re-sent finish) with the next two: the first two are stale now
    assert (await succeed(scripts, keys, rows))[2:] == ["succeeded"] * 2
    assert await entries(redis, stream) == eids[4:]


async def test_ids_of_different_lengths_are_ordered_by_value(redis: Redis, namespace: str) -> None:
    keys, scripts = Keys(namespace), Scripts(redis)
    stream = keys.stream("default", 2)
    with contextlib.suppress(ResponseError):
        await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
    eids = ["9-5", "9-10", "10-1", "10-9", "10-10", "99-100", "100-2", "1000-0"]
    for eid in eids:
        await redis.xadd(stream, {"t": "t.noop", "p": "J-|0"}, id=eid)
    rows = await scripts.run(calls.fetch(keys, 1_000, "w1", "w1.", 60_000, 8, [(stream, 8)]))
    by_entry = {str(r[1])[1:]: r for r in rows}
    left = list(eids)
    # the newest with an older one still pending, then a run below it, then the rest
    for batch in (["10-10", "1000-0"], ["9-10", "10-1", "10-9"], ["9-5", "99-100", "100-2"]):
        assert await succeed(scripts, keys, [by_entry[e] for e in batch]) == ["succeeded"] * len(batch)
        left = [e for e in left if e not in batch]
        assert await entries(redis, stream) == left
