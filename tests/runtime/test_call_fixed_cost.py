"""What a script call's fixed cost left out must still hold (issue 12, fixedcost): a full Redis refuses a
fetch whole and runs the end of an attempt, as a function (by its flags) and as an EVALSHA script (by the
prelude's guard writes); a fetch knows each stream's queue and level by the stream's own key, in one
library serving several namespaces; and its reads keep the plan's order and counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

MAXMEMORY = 8 * 1024 * 1024


async def fill(redis: Redis) -> int:
    """SET junk keys until Redis says OOM to a small one too (a large command's own query buffer counts
    while it is read); returns how many."""
    n = 0
    for size in (32_000, 1_000, 10):
        while True:
            try:
                await redis.set(f"junk:{n}", b"x" * size)
            except OutOfMemoryError:
                break
            n += 1
    return n


def end_of(row: list[object]) -> tuple[object, ...]:
    """A success of a fetched lean job's first attempt, as the finisher sends it."""
    return (row[0], row[1], "succeeded", "J-|0", 0, "", now_ms(), row[3], row[4], row[5] or "")


@pytest.mark.parametrize("mode", ["functions", "eval"])
async def test_a_full_redis_refuses_a_fetch_whole_and_runs_an_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    if mode == "eval":
        monkeypatch.setenv("TQFLOW_SCRIPTS", "eval")
    server = EmbeddedRedis(
        tmp_path / "redis", extra_args=("--maxmemory", str(MAXMEMORY), "--maxmemory-policy", "noeviction")
    )
    server.start()
    redis = connect(server.url)
    try:
        keys, scripts = Keys("oom"), Scripts(redis)
        stream = keys.stream("default", 2)
        await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
        client = Client(redis, "oom")
        first = await client.enqueue("t.a")
        waiting = await client.enqueue("t.b")
        await scripts.ensure_loaded()
        assert scripts.functions is (mode == "functions")
        [row] = await scripts.run(calls.fetch(keys, now_ms(), "w1", "w1:t:", 30_000, 1, [(stream, 1)]))
        assert row[0] == first
        junk = await fill(redis)
        with pytest.raises(OutOfMemoryError):
            await scripts.run(calls.fetch(keys, now_ms(), "w1", "w1:t:", 30_000, 10, [(stream, 10)]))
        pending = await redis.xpending(stream, keys.group)
        assert pending["pending"] == 1  # the refused fetch delivered nothing: `waiting` is still unread
        statuses = await scripts.run(calls.finish_many(keys, now_ms(), 60_000, [end_of(row)], "w1"))
        assert statuses == ["succeeded"]
        assert (await redis.xpending(stream, keys.group))["pending"] == 0
        await redis.delete(*(f"junk:{n}" for n in range(junk)))  # room again: the job left waiting is fetched
        [again] = await scripts.run(calls.fetch(keys, now_ms(), "w1", "w1:t:", 30_000, 10, [(stream, 10)]))
        assert again[0] == waiting
    finally:
        await redis.aclose()
        server.stop()


async def test_one_library_reads_each_stream_by_its_own_key(redis_url: str, namespace: str) -> None:
    """Streams of two namespaces, fetched in turns through one loaded library (whose stream places are kept
    by key between calls; on a cluster each namespace's node has its own), with queue names that hold ':q:',
    ':' and '.': each lean job is named by its own stream's queue and level."""
    names = [namespace, namespace + "-b"]
    queues = ["a:q:b", "x.y:2", "default"]
    conns = {ns: connect(redis_url, namespace=ns) for ns in names}  # (a cluster pins one a namespace)
    try:
        for _ in range(2):
            for ns, redis in conns.items():
                keys, client, scripts = Keys(ns), Client(redis, ns), Scripts(redis)
                for queue in queues:
                    stream = keys.stream(queue, 1)
                    await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
                    job = await client.enqueue("t.a", queue=queue, priority="high")
                    call = calls.fetch(keys, now_ms(), "w1", "w1:t:", 30_000, 5, [(stream, 5)])
                    [row] = await scripts.run(call)
                    assert (row[0], row[6], row[7]) == (job, queue, "1")
                    assert job.startswith(f"{queue}.1.")
                    await scripts.run(calls.finish_many(keys, now_ms(), 60_000, [end_of(row)], "w1"))
                    await redis.xgroup_destroy(stream, keys.group)
    finally:
        for ns, redis in conns.items():
            left = [k async for k in redis.scan_iter(match=f"{{{ns}}}*", count=1000)]
            if left:
                await redis.unlink(*left)
            await redis.aclose()


async def test_a_fetch_keeps_the_plans_order_and_counts(redis: Redis, namespace: str) -> None:
    """Five level streams, some empty: the first pass takes each stream's count in the plan's order, the
    second fills what is left from the streams in order (a stream of count 0 included), and an empty stream
    between them changes nothing."""
    keys, client, scripts = Keys(namespace), Client(redis, namespace), Scripts(redis)
    streams = [keys.stream("default", level) for level in range(5)]
    for stream in streams:
        await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
    for level, many in ((1, 4), (2, 6), (4, 3)):  # levels 0 and 3 stay empty
        for i in range(many):
            await client.enqueue("t.a", priority=("critical", "high", "normal", "low", "batch")[level], n=i)
    plan = list(zip(streams, [3, 1, 0, 2, 1], strict=True))  # 7 of 10 wanted by the counts
    rows = await scripts.run(calls.fetch(keys, now_ms(), "w1", "w1:t:", 30_000, 10, plan))
    levels = [row[7] for row in rows]
    # the first pass: level 1 its 1, level 4 its 1 (levels 0 and 3 empty, level 2 of count 0); the second
    # fills the 8 left in level order: level 1's other 3, then 5 of level 2's 6
    assert levels == ["1", "4", "1", "1", "1", "2", "2", "2", "2", "2"]
    more = await scripts.run(calls.fetch(keys, now_ms(), "w1", "w1:t:", 30_000, 10, plan))
    assert [row[7] for row in more] == ["4", "2", "4"]
    assert await scripts.run(calls.fetch(keys, now_ms(), "w1", "w1:t:", 30_000, 10, plan)) == []
