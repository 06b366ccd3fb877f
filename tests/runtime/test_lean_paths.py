"""The lean job's path through the scripts, at the edges of its fast paths (issue 12): fetch.lua starts the
common lean entry inline, and only that shape; finish_many.lua writes a lean success's end with the times as
the worker sent them. Every expected row and record here is built from the raw entry and the arguments sent,
not from the scripts' helpers."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tqflow.runtime.store import calls, records
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

from helpers import lean_stream

QUEUE, LEVEL = "default", 2


async def setup(redis: Redis, namespace: str) -> tuple[Keys, Scripts, str]:
    return await lean_stream(redis, namespace, QUEUE, LEVEL)


def expected_row(eid: str, task: str, payload: str, opts: str | None) -> list[object]:
    """What a lean entry's first attempt is (lua/common.lua start_entry, lean case), from its parts."""
    ms = eid.split("-")[0]
    return [f"{QUEUE}.{LEVEL}.{eid}", f"@{eid}", 1, task, payload, opts, QUEUE, str(LEVEL), ms, None, None]


async def test_every_shape_of_lean_entry_starts_as_its_fields_say(redis: Redis, namespace: str) -> None:
    keys, scripts, stream = await setup(redis, namespace)
    shapes = [
        ["t", "t.plain", "p", "J-|1"],  # as enqueue.lua writes it: the inline start
        ["t", "t.opts", "p", "J-|2", "o", '{"mr":3}'],  # with options: inline too
        ["p", "J-|3", "t", "t.reordered"],  # another order: the general start, the same row
        ["t", "t.extra", "p", "J-|4", "o", '{"mr":1}', "z", "9"],  # another field: the general start
        ["t", "t.nopayload"],  # no payload: the general start, an empty one
    ]
    eids = [await redis.xadd(stream, dict(zip(f[::2], f[1::2], strict=True))) for f in shapes]
    rows = await scripts.run(calls.fetch(keys, 1_000, "w1", "tok.", 30_000, 10, [(stream, 10)]))
    want = [
        expected_row(eids[0], "t.plain", "J-|1", None),
        expected_row(eids[1], "t.opts", "J-|2", '{"mr":3}'),
        expected_row(eids[2], "t.reordered", "J-|3", None),
        expected_row(eids[3], "t.extra", "J-|4", '{"mr":1}'),
        expected_row(eids[4], "t.nopayload", "", None),
    ]
    assert rows == want
    # nothing written: a first attempt's record is its pending entry
    assert [k async for k in redis.scan_iter(match=keys.job("*"))] == []
    pending = await redis.xpending_range(stream, keys.group, "-", "+", 10)
    assert [(p["message_id"], p["consumer"]) for p in pending] == [(e, "w1") for e in eids]


async def test_entries_that_are_not_plain_lean_jobs_still_take_the_guarded_start(
    redis: Redis, namespace: str
) -> None:
    keys, scripts, stream = await setup(redis, namespace)
    await redis.xadd(stream, {"j": "nobody"})  # names a job that does not exist: dead-lettered (F8)
    await redis.xadd(stream, {"x": "1"})  # names no job at all: dead-lettered
    rows = await scripts.run(calls.fetch(keys, 1_000, "w1", "tok.", 30_000, 10, [(stream, 10)]))
    assert rows == []
    assert await redis.xlen(stream) == 0
    dead = await redis.zrange(keys.dlq, 0, -1)
    assert len(dead) == 2 and all(d.startswith("malformed-") for d in dead)


@pytest.mark.parametrize("started", ["1700000000123", "not-a-time", ""])
async def test_a_lean_success_keeps_the_times_it_was_sent(redis: Redis, namespace: str, started: str) -> None:
    keys, scripts, stream = await setup(redis, namespace)
    eid = await redis.xadd(stream, {"t": "t.one", "p": "J-|7", "o": '{"mr":2}'})
    [row] = await scripts.run(calls.fetch(keys, 1_000, "w1", "tok.", 30_000, 1, [(stream, 1)]))
    now, ttl = 1_700_000_000_456, 60_000
    attempt = (row[0], row[1], "succeeded", "J-|42", 0, "", started, "t.one", "J-|7", '{"mr":2}')
    assert await scripts.run(calls.finish_many(keys, now, ttl, [attempt], "w1")) == ["succeeded"]
    record = await redis.hgetall(keys.job(row[0]))
    # a start time that is not an integer counts as none: the end's time, as before
    begun = started if started.isdigit() else str(now)
    assert record.keys() == {"state", "ran"}  # the end packed (store/endrow.py) …
    assert records.fields(record) == {  # … which every reader sees as the fields it stands for
        "state": "succeeded",
        "result": "J-|42",
        "attempt": "1",
        "started": begun,
        "finished": str(now),
        "worker": "w1",
        "task": "t.one",
        "payload": "J-|7",
        "opts": '{"mr":2}',
    }
    assert 0 < await redis.pttl(keys.job(row[0])) <= ttl
    assert await redis.xlen(stream) == 0 and (await redis.xpending(stream, keys.group))["pending"] == 0
    assert eid in row[1]


async def test_a_lean_success_someone_waits_for_is_announced(redis: Redis, namespace: str) -> None:
    keys, scripts, stream = await setup(redis, namespace)
    await redis.xadd(stream, {"t": "t.one", "p": "J-|1", "o": '{"nr":1}'})  # keep_result=False …
    [row] = await scripts.run(calls.fetch(keys, 1_000, "w1", "tok.", 30_000, 1, [(stream, 1)]))
    await redis.hset(keys.job(row[0]), "w", "1")  # … but a waiter flagged it (watch.lua): it is kept
    attempt = (row[0], row[1], "succeeded", "J-|5", 0, "", 900, "t.one", "J-|1", '{"nr":1}')
    assert await scripts.run(calls.finish_many(keys, 2_000, 60_000, [attempt], "w1")) == ["succeeded"]
    record = records.fields(await redis.hgetall(keys.job(row[0])))
    seen = (record["state"], record["result"], record["w"], record["started"])
    assert seen == ("succeeded", "J-|5", "1", "900")
    # and a stale token (another entry's) changes nothing
    again = (row[0], "@0-1", "succeeded", "J-|6", 0, "", 900, "t.one", "J-|1", "")
    assert await scripts.run(calls.finish_many(keys, 3_000, 60_000, [again], "w1")) == ["stale"]
    assert records.fields(await redis.hgetall(keys.job(row[0])))["result"] == "J-|5"


async def test_limited_lean_entries_start_inline_after_the_first_and_bad_options_still_dead_letter(
    redis: Redis, namespace: str
) -> None:
    """A limited lean entry starts inline once the call decoded its options (the first of them goes
    through the guarded start): the same rows and slots as the guarded start gives. Options that are not
    JSON never reach the inline start: each such entry is dead-lettered on its own (F15); the fetch goes
    on."""
    keys, scripts, stream = await setup(redis, namespace)
    opts = '{"lim":[{"n":"inl","c":3}]}'
    eids = [await redis.xadd(stream, {"t": "t.lim", "p": f"J-|{i}", "o": opts}) for i in range(5)]
    bad = [await redis.xadd(stream, {"t": "t.bad", "p": "J-|9", "o": '{"lim": ['}) for _ in range(2)]
    rows = await scripts.run(calls.fetch(keys, 1_000, "w1", "tok.", 30_000, 10, [(stream, 10)]))
    assert rows == [expected_row(e, "t.lim", f"J-|{i}", opts) for i, e in enumerate(eids[:3])]
    assert await redis.smembers(keys.limit("inl|", "s")) == {f"{QUEUE}.{LEVEL}.{e}" for e in eids[:3]}
    assert await redis.zscore(keys.limit("inl|", "e"), "lease") == 31_000  # the start's lease
    parked = [await redis.hget(keys.job(f"{QUEUE}.{LEVEL}.{e}"), "state") for e in eids[3:]]
    assert parked == ["limited", "limited"]
    dead = set(await redis.zrange(keys.dlq, 0, -1))  # no record: under the entry's own name
    assert dead == {f"malformed-{QUEUE}-{LEVEL}-{e}" for e in bad}
