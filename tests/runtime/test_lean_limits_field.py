"""A limited lean job's limits on its entry (issue 16: a limited job's extra Redis cost): enqueue.lua
keeps the options' `lim` apart as the entry's `l` field (the JSON array), fetch.lua admits by it without
the options' JSON, the fetched row's options carry it after a newline when the job holds slots (what the
worker sends back at its end), and the end gives the slots back without keeping the limits in the record
(no job view shows them). Entries written before `l` (the limits in `o`) and what their workers send back
still work: the compatibility cases are hand-made entries (XADD), run by the scripts and by a real worker."""

from __future__ import annotations

import contextlib
import json
import uuid

from redis.exceptions import ResponseError

from tqflow.runtime.client import Client
from tqflow.runtime.limits import Limiter, Rate
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls, records
from tqflow.runtime.store.scripts import Scripts

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["limit_tasks"], [FLOWS])
import limit_tasks as lt  # noqa: E402 - loaded from tests/flows above

LEASE_MS = 30_000


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def opts_of(client: Client, key: str) -> str | None:
    """The options a job's record keeps, as every reader sees them (store/records.py fields: a lean
    success's packed end unpacked)."""
    return records.fields(await client.redis.hgetall(key)).get("opts")


async def group(client: Client) -> str:
    stream = client.keys.stream("limits", 2)
    with contextlib.suppress(ResponseError):
        await client.redis.xgroup_create(stream, "tqflow", id="0", mkstream=True)
    return stream


async def fetch(client: Client, scripts: Scripts, wanted: int) -> list[list[object]]:
    stream = client.keys.stream("limits", 2)
    call = calls.fetch(client.keys, now_ms(), "w1", "tok", LEASE_MS, wanted, [(stream, wanted)])
    rows: list[list[object]] = await scripts.run(call)
    return rows


async def finish(client: Client, scripts: Scripts, rows: list[list[object]]) -> list[str]:
    """As worker/finisher.py ends a lean first attempt: its arguments and the options its row held."""
    attempts = [
        (row[0], row[1], "succeeded", "J-|null", 0, "", now_ms(), row[3], row[4], row[5] or "")
        for row in rows
    ]
    statuses: list[str] = await scripts.run(calls.finish_many(client.keys, now_ms(), 60_000, attempts, "w1"))
    return statuses


async def entry(client: Client, job_id: str) -> dict[str, str]:
    eid = job_id.rsplit(".", 1)[1]
    found = await client.redis.xrange(client.keys.stream("limits", 2), eid, eid)
    return dict(found[0][1])


async def test_the_entry_keeps_the_limits_apart_and_the_options_without_them(client: Client) -> None:
    t = tag()
    lim = Limiter(f"apart-{t}", concurrency=2)
    alone = str(await client.enqueue(lt.hold, tag=t, limit=lim))
    more = str(await client.enqueue(lt.hold, tag=t, limit=lim.by("k|1"), dead_letter="dl", keep_result=False))
    wire = [{"n": f"apart-{t}", "c": 2}]
    fields = await entry(client, alone)
    assert set(fields) == {"t", "p", "l"} and json.loads(fields["l"]) == wire
    fields = await entry(client, more)
    assert set(fields) == {"t", "p", "o", "l"}
    assert json.loads(fields["o"]) == {"dlq": "dl", "nr": 1}
    assert json.loads(fields["l"]) == [{"n": f"apart-{t}", "k": "k|1", "c": 2}]
    # a queued job's views are what they were: its options read back whole
    view = await client.job(more)
    assert view.state == "queued"


async def test_options_whose_limits_are_not_last_stay_whole_in_o(client: Client) -> None:
    """Options from another writer (limits not the last key) are not split: the entry holds them whole, as
    before `l`, and the job starts under its limit all the same."""
    t = tag()
    stream = await group(client)
    scripts = Scripts(client.redis)
    opts = json.dumps({"lim": [{"n": f"whole-{t}", "c": 1}], "dlq": "dl"}, separators=(",", ":"))
    call = calls.enqueue(
        client.keys,
        "lane",
        uuid.uuid4().hex,
        [now_ms(), "all", 1 << 20],
        [4, "t.x", "limits", 2, opts, ".0|J-|1", ".0|J-|2"],
    )
    status = await scripts.run(call)
    eids = status[1:]
    fields = [dict(e[1]) for e in await client.redis.xrange(stream)]
    assert fields == [{"t": "t.x", "p": "J-|1", "o": opts}, {"t": "t.x", "p": "J-|2", "o": opts}]
    rows = await fetch(client, scripts, 10)
    assert [row[0] for row in rows] == [f"limits.2.{eids[0]}"]  # one slot: the other is parked
    assert await client.redis.hget(client.keys.job(f"limits.2.{eids[1]}"), "state") == "limited"


async def test_new_entries_start_inline_and_their_rows_carry_the_limits_back(client: Client) -> None:
    t = tag()
    stream = await group(client)
    scripts = Scripts(client.redis)
    lims = json.dumps([{"n": f"inl-{t}", "c": 2}], separators=(",", ":"))
    eids = [await client.redis.xadd(stream, {"t": "t.l", "p": f"J-|{i}", "l": lims}) for i in range(3)]
    with_o = await client.redis.xadd(stream, {"t": "t.l", "p": "J-|9", "o": '{"dlq":"dl"}', "l": lims})
    rows = await fetch(client, scripts, 10)
    ids = [f"limits.2.{e}" for e in eids]
    assert [row[0] for row in rows] == ids[:2]
    assert [row[5] for row in rows] == ["\n" + lims] * 2  # what its end gives back
    holders = client.keys.limit(f"inl-{t}|", "s")
    assert sorted(await client.redis.smembers(holders)) == sorted(ids[:2])
    for i in ids[:2]:  # started from their entries: no record
        assert await client.redis.exists(client.keys.job(i)) == 0
    parked = [f"limits.2.{e}" for e in (eids[2], with_o)]
    for i in parked:  # parked: a record, its limits in its options as any record holds them
        assert await client.redis.hget(client.keys.job(i), "state") == "limited"
    assert await client.redis.hget(client.keys.job(parked[0]), "opts") == '{"lim":' + lims + "}"
    assert await client.redis.hget(client.keys.job(parked[1]), "opts") == '{"dlq":"dl","lim":' + lims + "}"
    assert await finish(client, scripts, rows) == ["succeeded"] * 2
    # the slots went back and were granted to the two parked jobs
    assert sorted(await client.redis.smembers(holders)) == sorted(parked)
    for i in ids[:2]:  # the end record: no options of its own (the limits are not kept)
        record = await client.redis.hgetall(client.keys.job(i))
        assert record["state"] == "succeeded" and "opts" not in record
    # the granted ones start from their records (limits from `opts`) and end as any job
    rows = await fetch(client, scripts, 10)
    assert sorted(row[0] for row in rows) == sorted(parked)
    assert await finish(client, scripts, rows) == ["succeeded"] * 2
    assert await client.redis.scard(holders) == 0


async def test_a_rate_limited_entry_sends_nothing_back_and_keeps_its_other_options(client: Client) -> None:
    t = tag()
    stream = await group(client)
    scripts = Scripts(client.redis)
    lims = json.dumps([{"n": f"tok-{t}", "r": 2, "p": 3_600_000}], separators=(",", ":"))
    eids = [
        await client.redis.xadd(stream, {"t": "t.r", "p": "J-|1", "o": '{"dlq":"dl"}', "l": lims})
        for _ in range(3)
    ]
    rows = await fetch(client, scripts, 10)
    assert [row[0] for row in rows] == [f"limits.2.{e}" for e in eids[:2]]
    assert [row[5] for row in rows] == ['{"dlq":"dl"}'] * 2  # no slot to give back
    assert await client.redis.hget(client.keys.job(f"limits.2.{eids[2]}"), "state") == "limited"
    assert await finish(client, scripts, rows) == ["succeeded"] * 2
    assert await opts_of(client, client.keys.job(rows[0][0])) == '{"dlq":"dl"}'


async def test_a_limits_text_that_is_not_a_list_of_limits_takes_the_guarded_start(client: Client) -> None:
    stream = await group(client)
    scripts = Scripts(client.redis)
    bad = await client.redis.xadd(stream, {"t": "t.bad", "p": "J-|1", "l": "[{"})
    odd = await client.redis.xadd(stream, {"t": "t.bad", "p": "J-|1", "l": '[{"n":"x","c":0}]'})
    fine = await client.redis.xadd(stream, {"t": "t.ok", "p": "J-|1"})
    rows = await fetch(client, scripts, 10)
    assert [row[0] for row in rows] == [f"limits.2.{fine}"]
    dead = set(await client.redis.zrange(client.keys.dlq, 0, -1))
    assert dead == {f"malformed-limits-2-{bad}"}
    # a limit that can never admit takes the general start, as in `o`: parked
    assert await client.redis.hget(client.keys.job(f"limits.2.{odd}"), "state") == "limited"


async def test_old_entries_and_old_finishes_still_run_under_their_limit(client: Client) -> None:
    """Entries written before `l` (limits in `o`), fetched by the scripts and ended as an older worker ended
    them (the options JSON sent back, or nothing: read from the entry): slots taken, parked, given back."""
    t = tag()
    stream = await group(client)
    scripts = Scripts(client.redis)
    opts = json.dumps({"dlq": "dl", "lim": [{"n": f"old-{t}", "c": 2}]}, separators=(",", ":"))
    eids = [await client.redis.xadd(stream, {"t": "t.o", "p": f"J-|{i}", "o": opts}) for i in range(4)]
    ids = [f"limits.2.{e}" for e in eids]
    rows = await fetch(client, scripts, 10)
    assert [row[0] for row in rows] == ids[:2] and [row[5] for row in rows] == [opts] * 2
    holders = client.keys.limit(f"old-{t}|", "s")
    assert sorted(await client.redis.smembers(holders)) == sorted(ids[:2])
    # one ended with its options sent back, one with nothing sent (read from the entry)
    sent = [(rows[0][0], rows[0][1], "succeeded", "J-|null", 0, "", now_ms(), rows[0][3], rows[0][4], opts)]
    bare = [(rows[1][0], rows[1][1], "succeeded", "J-|null", 0, "", now_ms(), rows[1][3])]
    for attempts in (sent, bare):
        assert await scripts.run(calls.finish_many(client.keys, now_ms(), 60_000, attempts, "w1")) == [
            "succeeded"
        ]
    assert sorted(await client.redis.smembers(holders)) == sorted(ids[2:])  # granted
    for i in ids[:2]:  # the end record keeps the options as before
        assert await opts_of(client, client.keys.job(i)) == opts


async def test_a_worker_runs_old_and_new_entries_under_one_limit(
    client: Client, start_worker: WorkerFactory
) -> None:
    """Hand-made entries of both forms for one limiter, run by a real worker with room for all of them at
    once: never more than the limit run together, every one succeeds once, no slot is left held."""
    t = tag()
    name = f"mix-{t}"
    template = str(
        await client.enqueue(lt.hold, tag=t, seconds=0.1, label="x", limit=Limiter(name, concurrency=2))
    )
    fields = await entry(client, template)
    stream = client.keys.stream("limits", 2)
    await client.redis.xdel(stream, template.rsplit(".", 1)[1])
    lims = fields["l"]
    ids = []
    for i in range(8):
        f = {"t": fields["t"], "p": fields["p"]}
        f.update({"o": '{"lim":' + lims + "}"} if i % 2 else {"l": lims})
        ids.append(f"limits.2.{await client.redis.xadd(stream, f)}")
    await start_worker(TASKS, queues=["limits"], concurrency=8)
    assert [await client.result(i, timeout=20) for i in ids] == ["x"] * 8
    assert lt.peak[t] == 2
    assert [(await client.job(i)).attempt for i in ids] == [1] * 8
    assert await client.redis.scard(client.keys.limit(f"{name}|", "s")) == 0


async def test_a_worker_runs_a_new_limited_job_with_options_and_keeps_them(
    client: Client, start_worker: WorkerFactory
) -> None:
    """The worker reads the options before the newline of its row (the rest is what it sends back)."""
    t = tag()
    lim = Limiter(f"opt-{t}", rate=Rate(100, per="s"))
    ids = [
        str(await client.enqueue(lt.hold, tag=t, seconds=0.01, label=str(i), limit=lim, dead_letter="dl"))
        for i in range(3)
    ]
    conc = str(
        await client.enqueue(
            lt.hold, tag=t, seconds=0.01, label="c", limit=Limiter(f"c-{t}", concurrency=1), dead_letter="dl"
        )
    )
    await start_worker(TASKS, queues=["limits"], concurrency=4)
    assert [await client.result(i, timeout=20) for i in [*ids, conc]] == ["0", "1", "2", "c"]
    for i in [*ids, conc]:
        assert await opts_of(client, client.keys.job(i)) == '{"dlq":"dl"}'
    assert await client.redis.scard(client.keys.limit(f"c-{t}|", "s")) == 0
