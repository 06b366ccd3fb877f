"""The scripts take their key prefix from KEYS[1]: a job enqueued, started and finished through a partition's
keys lives in that partition's hash tag only, and the single-partition layout is untouched."""

from __future__ import annotations

from redis.asyncio import Redis

from tqflow.runtime.connection import ForeignSlotError, connect, pin
from tqflow.runtime.resend import new_nonce
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts


async def test_a_job_in_partition_2_never_leaves_its_slot(redis_url: str, namespace: str) -> None:
    keys = Keys(namespace, 2)
    redis = connect(redis_url)
    pin(redis, namespace, "2")  # on a Redis Cluster, to the node of the partition's slot
    try:
        await partition_2_job(redis, keys, namespace)
    finally:
        await redis.aclose()


async def partition_2_job(redis: Redis, keys: Keys, namespace: str) -> None:
    scripts = Scripts(redis)
    stream = keys.stream("default", 2)
    await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
    reply = await scripts.run(
        calls.enqueue(
            keys,
            "lane",
            new_nonce(),
            [1000, "each", 1_000_000],
            [4, "t.noop", "default", 2, "", "0123456789abcdef0|J-|{}"],
        )
    )
    assert reply == ["done", "ok"]
    [row] = await scripts.run(calls.fetch(keys, 1001, "w1", "tok-", 60_000, 1, [(stream, 1)]))
    assert row[0] == "0123456789abcdef"
    [status] = await scripts.run(
        calls.finish_many(keys, 1002, 60_000, [[row[0], row[1], "succeeded", "J-|1", 0, ""]])
    )
    assert status == "succeeded"
    written = {k async for k in redis.scan_iter(match=f"*{namespace}*")}
    assert await redis.hget(keys.job(row[0]), "state") == "succeeded"
    await redis.unlink(*written)
    assert written and all(k.startswith(keys.prefix + ":") for k in written), written


async def test_a_script_refuses_a_first_key_outside_any_namespace(redis: Redis) -> None:
    scripts = Scripts(redis)
    try:
        await scripts.call("watch", ["plain-key"], ["x"])
    except Exception as err:  # redis.exceptions.ResponseError
        # On a Redis Cluster a key of another node's slot is refused before the script runs.
        assert "KEYS[1] must be a tqflow key" in str(err) or isinstance(err, ForeignSlotError), err
    else:
        raise AssertionError("the script ran without a namespaced KEYS[1]")
