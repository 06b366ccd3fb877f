"""A lean job's first-attempt success writes its end packed (store/endrow.py: `state`, `result` and `ran`,
sent made by finish_many.lua's short form); every reader sees the fields a record written field by field
holds, and records an older version wrote field by field (hand-made here) read as before."""

from __future__ import annotations

from typing import Any

import httpx
from redis.asyncio import Redis

from tqflow.runtime import channels
from tqflow.runtime.client import Client
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.store import calls, endrow, jobrows, records
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

from helpers import lean_stream

QUEUE, LEVEL = "default", 2
STARTED, FINISHED = 1_700_000_000_100, 1_700_000_000_250


def old_record(task: str, opts: str | None) -> dict[str, str]:
    """A lean success's end as it was written before `ran`: nine fields."""
    row = {
        "state": "succeeded",
        "result": "J-|42",
        "attempt": "1",
        "started": str(STARTED),
        "finished": str(FINISHED),
        "worker": "w1",
        "task": task,
        "payload": 'J-|{"x":1}',
    }
    if opts:
        row["opts"] = opts
    return row


def packed_record(task: str, opts: str | None) -> dict[str, str]:
    ran = endrow.pack(STARTED, FINISHED, "w1", task, opts or "", 'J-|{"x":1}', "J-|42")
    assert ran is not None
    return {"state": "succeeded", endrow.FIELD: ran}


def comparable(view: Any) -> dict[str, Any]:
    if isinstance(view, dict):
        shown = view
    else:
        shown = view.model_dump() if hasattr(view, "model_dump") else vars(view)
    return {k: v for k, v in shown.items() if k not in ("id", "name")}  # (a standalone job's name is its id)


async def test_an_old_record_and_a_packed_one_read_alike(
    client: Client, redis: Redis, api: httpx.AsyncClient
) -> None:
    old_id, new_id = f"{QUEUE}.{LEVEL}.1700000000000-0", f"{QUEUE}.{LEVEL}.1700000000000-1"
    for opts in (None, '{"dlq":"dl","t":5000}'):
        await redis.hset(client.keys.job(old_id), mapping=old_record("t.one", opts))
        await redis.hset(client.keys.job(new_id), mapping=packed_record("t.one", opts))
        assert await redis.hlen(client.keys.job(new_id)) == 2
        old_info, new_info = await client.job(old_id), await client.job(new_id)
        assert comparable(old_info) == comparable(new_info)
        seen = (new_info.state, new_info.attempt, new_info.task, new_info.worker)
        assert seen == ("succeeded", 1, "t.one", "w1")
        assert new_info.result == 42
        inspector = Inspector(redis, client.keys.namespace)
        old_view, new_view = await inspector.job(old_id), await inspector.job(new_id)
        assert comparable(old_view) == comparable(new_view)
        assert (new_view.started, new_view.finished, new_view.duration_ms) == (STARTED, FINISHED, 150)
        assert new_view.args == {"x": 1} and len(new_view.attempts) == 1
        assert new_view.options == ({"timeout_ms": 5000, "dead_letter": "dl"} if opts else {})
        old_api = (await api.get(f"/api/jobs/{old_id}")).json()
        new_api = (await api.get(f"/api/jobs/{new_id}")).json()
        assert comparable(old_api) == comparable(new_api)
        assert await jobrows.tasks(redis, client.keys, [old_id, new_id, "nobody"]) == ["t.one", "t.one", None]
        assert (await jobrows.record(redis, client.keys, new_id)).get("payload") == 'J-|{"x":1}'
        await redis.delete(client.keys.job(old_id), client.keys.job(new_id))


def test_a_packed_end_holds_any_arguments_and_result_and_refuses_a_separator_in_a_name() -> None:
    args, result = "J-|a\x1fb\nc12", "J-|\x1f3\x1f\u00e9\u2603"  # any ASCII arguments, any result
    ran = endrow.pack(1, 2, "w", "t", '{"t":5}', args, result)
    assert ran is not None
    seen = records.fields({"state": "succeeded", "ran": ran})
    assert (seen["payload"], seen["result"], seen["opts"], seen["started"]) == (args, result, '{"t":5}', "1")
    assert (
        records.fields({"state": "succeeded", "ran": endrow.pack(1, 2, "w", "t", "", "", "")})["result"] == ""
    )
    assert endrow.pack(1, 2, "w\x1f", "t", "", "", "") is None
    assert endrow.pack(1, 2, "w", "t\x1f", "", "", "") is None
    assert endrow.pack(1, 2, "w", "t", "", "J-|\u00e9", "") is None  # arguments not ASCII: field by field
    row = {"state": "succeeded", "task": "t"}
    assert records.fields(row) is row  # no `ran`: as it is


async def setup(redis: Redis, namespace: str) -> tuple[Keys, Scripts, str]:
    return await lean_stream(redis, namespace, QUEUE, LEVEL)


async def test_short_and_long_forms_mix_in_one_call(redis: Redis, namespace: str) -> None:
    """A call's ends in both forms, in any order: each answered in its place, each record as its end says."""
    keys, scripts, stream = await setup(redis, namespace)
    for n in range(4):
        await redis.xadd(stream, {"t": "t.one", "p": f"J-|{n}"})
    rows = await scripts.run(calls.fetch(keys, 1_000, "w1", "tok.", 30_000, 4, [(stream, 4)]))
    assert len(rows) == 4
    ends = [
        (rows[0][0], rows[0][1], "succeeded", "J-|10", 0, "", 900, "t.one", rows[0][4], ""),  # short
        (rows[1][0], rows[1][1], "retry", '{"message":"again"}', 0, "", 900, "t.one", rows[1][4], ""),  # long
        (rows[2][0], rows[2][1], "succeeded", "J-|12", 0, "", 900, "t.one", "", ""),  # args not sent: long
        (rows[3][0], "@0-9", "succeeded", "J-|13", 0, "", 900, "t.one", rows[3][4], ""),  # not its token
    ]
    call = calls.finish_many(keys, 2_000, 60_000, ends, "w1")
    assert len(call.args) == 3 + 2 + 10 + 10 + 2  # short, long, long, short (its token decides nothing here)
    assert await scripts.run(call) == ["succeeded", "retry", "succeeded", "stale"]
    short, long = [await redis.hgetall(keys.job(rows[i][0])) for i in (0, 2)]
    assert short.keys() == {"state", "ran"}
    assert long.keys() == {"state", "result", "attempt", "started", "finished", "worker", "task", "payload"}
    for i, record in ((0, short), (2, long)):
        seen = records.fields(record)
        assert seen == {
            "state": "succeeded",
            "result": f"J-|1{i}",
            "attempt": "1",
            "started": "900",
            "finished": "2000",
            "worker": "w1",
            "task": "t.one",
            "payload": f"J-|{i}",
        }
    retried = await redis.hgetall(keys.job(rows[1][0]))
    assert retried["state"] == "queued" and retried["error"] == '{"message":"again"}'
    assert not await redis.exists(keys.job(rows[3][0]))  # a stale end writes nothing


async def test_a_worker_name_with_the_separator_ends_in_the_long_form(redis: Redis, namespace: str) -> None:
    keys, scripts, stream = await setup(redis, namespace)
    await redis.xadd(stream, {"t": "t.one", "p": "J-|1", "o": '{"mr":2}'})
    [row] = await scripts.run(calls.fetch(keys, 1_000, "w\x1f1", "tok.", 30_000, 1, [(stream, 1)]))
    end = (row[0], row[1], "succeeded", "J-|5", 0, "", 900, "t.one", "J-|1", '{"mr":2}')
    assert await scripts.run(calls.finish_many(keys, 2_000, 60_000, [end], "w\x1f1")) == ["succeeded"]
    record = await redis.hgetall(keys.job(row[0]))
    assert endrow.FIELD not in record and record["worker"] == "w\x1f1" and record["opts"] == '{"mr":2}'


async def test_one_exists_for_a_call_never_lets_an_end_skip_a_record(redis: Redis, namespace: str) -> None:
    """finish_many asks one EXISTS for all its keys and, when none has a record, skips each job's own: a key
    named twice in a call, or a job an earlier end of the call gave a record, still meets its record."""
    keys, scripts, stream = await setup(redis, namespace)
    for n in range(3):
        await redis.xadd(stream, {"t": "t.one", "p": f"J-|{n}"})
    rows = await scripts.run(calls.fetch(keys, 1_000, "w1", "tok.", 30_000, 3, [(stream, 3)]))
    a, b, c = ((r[0], r[1]) for r in rows)
    twice = [
        (*a, "succeeded", "J-|10", 0, "", 900, "t.one", "J-|0", ""),
        (*a, "succeeded", "J-|11", 0, "", 900, "t.one", "J-|0", ""),  # the same end again: stale
        (*b, "retry", '{"message":"again"}', 0, "", 900, "t.one", "J-|1", ""),  # makes b's record …
        (*b, "succeeded", "J-|12", 0, "", 900, "t.one", "J-|1", ""),  # … which fences this one out
    ]
    assert await scripts.run(calls.finish_many(keys, 2_000, 60_000, twice, "w1")) == [
        "succeeded",
        "stale",
        "retry",
        "stale",
    ]
    assert records.fields(await redis.hgetall(keys.job(a[0])))["result"] == "J-|10"
    assert (await redis.hgetall(keys.job(b[0])))["state"] == "queued"
    # a waiter's flag is a record: that call asks each job (and announces the one waited for)
    await redis.hset(keys.job(c[0]), "w", "1")
    async with redis.pubsub() as pubsub:
        await channels.subscribe(redis, pubsub, keys.done_channel)  # as the waiter listens
        await pubsub.get_message(timeout=1)
        end = (*c, "succeeded", "J-|13", 0, "", 900, "t.one", "J-|2", "")
        assert await scripts.run(calls.finish_many(keys, 3_000, 60_000, [end], "w1")) == ["succeeded"]
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert message is not None and message["data"] == c[0]
    record = await redis.hgetall(keys.job(c[0]))
    assert record["w"] == "1" and records.fields(record)["result"] == "J-|13"


async def test_a_short_end_of_a_job_given_a_record_while_it_ran_writes_the_result(
    redis: Redis, namespace: str
) -> None:
    """A cancel asked while a lean job ran gave it a running record: its short-form success is an end like
    any with a record (the result taken out of the packed field), and a success wins over the cancel."""
    keys, scripts, stream = await setup(redis, namespace)
    await redis.xadd(stream, {"t": "t.one", "p": "J-|1"})
    [row] = await scripts.run(calls.fetch(keys, 1_000, "w1", "tok.", 30_000, 1, [(stream, 1)]))
    assert await scripts.run(calls.cancel(keys, 1_500, "test", [row[0]])) == ["cancelling"]
    assert (await redis.hgetall(keys.job(row[0])))["state"] == "running"
    result = "J-|\u00e9\x1f7"  # the separator and any character in a result
    end = (row[0], row[1], "succeeded", result, 0, "", 900, "t.one", "J-|1", "")
    call = calls.finish_many(keys, 2_000, 60_000, [end], "w1")
    assert len(call.args) == 3 + 2  # the short form
    assert await scripts.run(call) == ["succeeded"]
    record = await redis.hgetall(keys.job(row[0]))
    assert (record["state"], record["result"], record["finished"]) == ("succeeded", result, "2000")
    assert endrow.FIELD not in record


async def test_a_hand_made_ran_that_is_not_a_packed_end_reads_as_a_record_without_it(
    client: Client, redis: Redis, api: httpx.AsyncClient
) -> None:
    """Garbage in `ran` (too few parts, a length that is no number, bytes that are not UTF-8): every reader
    answers, with the state the record holds and nothing made up from the garbage."""
    for n, ran in enumerate((b"garbage", b"1\x1f2\x1fw\x1ft\x1f\x1fNaN\x1fxy", b"\xff\xfe\x1f\x80")):
        job_id = f"{QUEUE}.{LEVEL}.1700000000000-{10 + n}"
        await redis.hset(client.keys.job(job_id), mapping={"state": "succeeded", endrow.FIELD: ran})
        info = await client.job(job_id)
        assert info is not None and info.state == "succeeded" and info.result is None
        view = await Inspector(redis, client.keys.namespace).job(job_id)
        assert view is not None and view.state == "succeeded"
        got = await api.get(f"/api/jobs/{job_id}")
        assert got.status_code == 200 and got.json()["state"] == "succeeded"
        assert await jobrows.results(redis, client.keys, [job_id]) == [None]
