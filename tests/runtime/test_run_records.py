"""A run's job records: what submit_run writes (no field left at its default, the hot fields first, the jobs
sent flat rather than as JSON), and runs whose records were written in the older layout (every field, empty
ones too, as JSON), finished by this code."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis

from tqflow.plan import FlowPlan, JobPlan, OutputPlan
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import job_records, new_run_id, now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.calls import ScriptCall, run_jobs
from tqflow.runtime.store.records import StartKnown, run_context
from tqflow.runtime.worker import finisher

from helpers import FLOWS, WorkerFactory, plan_with
from helpers import job_plan as job

TASKS = {**load_tasks(["job_tasks"], [FLOWS])}


def chain() -> FlowPlan:
    """a -> b (b reads a's output), and c after b succeeded."""
    return FlowPlan(
        name="chain",
        jobs={
            "a": job("a", "job_tasks.add", {"x": {"lit": 1}, "y": {"lit": 2}}),
            "b": job("b", "job_tasks.add", {"x": {"out": "a"}, "y": {"lit": 10}}, ["a"]),
            "c": job("c", "job_tasks.add", {"x": {"lit": 0}}).model_copy(
                update={"waits_for": ["b"], "after": {"status": ["b", "succeeded"]}}
            ),
        },
        order=["a", "b", "c"],
        outputs=[OutputPlan(name="b", value={"out": "b"})],
    )


async def test_a_run_job_record_holds_no_field_at_its_default(client: Client, redis: Redis) -> None:
    await client.deploy(plan_with(chain()))
    run_id = await client.start_run("chain")  # no worker: a is queued, b and c wait
    b = await redis.hgetall(client.keys.job(f"{run_id}.b"))
    # the order the hash keeps; no `name`: the id (RUN.NAME) says it
    assert list(b)[:5] == ["run", "state", "created", "deps_left", "dependents"]
    assert "name" not in b and (await client.job(f"{run_id}.b")).name == "b"
    assert (b["state"], b["deps_left"], b["data_deps"]) == ("waiting", "1", '["a"]')
    # c reads no output, has no delay, options …: b lists it with its `after` (its release reads 3 fields)
    assert json.loads(b["dependents"]) == [["c", {"status": ["b", "succeeded"]}]]
    a = await redis.hgetall(client.keys.job(f"{run_id}.a"))
    assert json.loads(a["dependents"]) == ["b"]  # b reads a's output: its release reads its record
    for default in ("id", "attempt", "opts", "delay_ms", "deadline_ms", "fan_out", "unique", "when", "after"):
        assert default not in b, default
    c = await redis.hgetall(client.keys.job(f"{run_id}.c"))
    assert "data_deps" not in c and "dependents" not in c
    assert json.loads(c["after"]) == {"status": ["b", "succeeded"]}


def older_records(run_id: str) -> list[dict[str, str]]:
    """The chain's job records as the previous tqflow sent them (every field, defaults too)."""
    base = {"flow": "chain", "task": "job_tasks.add", "queue": "default", "prio": "2", "opts": ""}
    base |= {"delay_ms": "0", "deadline_ms": "0", "fan_out": "", "unique": "", "when": ""}
    return [
        {**base, "name": "a", "args": '{"x":{"lit":1},"y":{"lit":2}}', "after": "", "data_deps": "[]"}
        | {"dependents": '["b"]', "deps_left": "0"},
        {**base, "name": "b", "args": '{"x":{"out":"a"},"y":{"lit":10}}', "after": "", "data_deps": '["a"]'}
        | {"dependents": '["c"]', "deps_left": "1"},
        {**base, "name": "c", "args": '{"x":{"lit":0}}', "after": '{"status":["b","succeeded"]}'}
        | {"data_deps": "[]", "dependents": "[]", "deps_left": "1"},
    ]


async def test_an_older_json_submission_makes_a_run_that_finishes(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    """submit_run sent by an older tqflow (the jobs one JSON list), as a cluster outbox may still hold it."""
    await client.deploy(plan_with(chain()))
    run_id, now = new_run_id(), now_ms()
    fields = {"flow": "chain", "version": "1", "plan_id": chain().id, "params": "{}"}
    call = ScriptCall(
        "submit_run",
        [client.keys.run(run_id), client.keys.runs],
        [now, run_id, json.dumps(fields), json.dumps(older_records(run_id))],
    )
    assert await client.scripts.run(call) == 1  # one root started
    assert (await redis.hgetall(client.keys.job(f"{run_id}.c")))["fan_out"] == ""  # the older fields, kept
    await start_worker(TASKS)
    info = await client.wait(run_id, timeout=20)
    assert (info.state, info.outputs) == ("succeeded", {"b": 13}), info
    assert [info.jobs[n].state for n in "abc"] == ["succeeded"] * 3


async def test_a_run_written_in_the_older_layout_is_finished_by_this_code(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    """Hand-made records as the previous create_run wrote them (`id`, `attempt` 0, every field, empty ones
    too): a ran and succeeded under the older code, b is queued on its stream, c waits."""
    await client.deploy(plan_with(chain()))
    run_id, now = new_run_id(), now_ms()
    await redis.hset(
        client.keys.run(run_id),
        mapping={"state": "running", "created": now, "open": 2, "failed": 0, "flow": "chain", "version": "1"}
        | {"plan_id": chain().id, "params": "{}"},
    )
    await redis.zadd(client.keys.runs, {run_id: now})
    old: dict[str, dict[str, Any]] = {}
    for record in older_records(run_id):
        jid = f"{run_id}.{record['name']}"
        old[record["name"]] = {"id": jid, "run": run_id, "state": "waiting", "attempt": "0", "created": now}
        old[record["name"]] |= record
    old["a"] |= {"state": "succeeded", "attempt": "1", "result": "J-|3", "finished": now, "token": ""}
    old["a"] |= {"enqueued": now, "entry": "1-1", "worker": "gone", "started": now, "stream": "x"}
    stream = client.keys.stream("default", 2)
    entry = await redis.xadd(stream, {"j": f"{run_id}.b"})
    old["b"] |= {"state": "queued", "deps_left": "0", "enqueued": now, "entry": entry}
    for name, record in old.items():
        await redis.hset(client.keys.job(f"{run_id}.{name}"), mapping=record)
    await start_worker(TASKS)
    info = await client.wait(run_id, timeout=20)
    assert (info.state, info.outputs) == ("succeeded", {"b": 13}), info
    assert [(info.jobs[n].state, info.jobs[n].attempt) for n in "abc"] == [("succeeded", 1)] * 3


async def test_the_end_that_releases_dependents_decides_them_by_its_own_state(
    client: Client, start_worker: WorkerFactory
) -> None:
    """The root's end releases its dependents with the state it just wrote (not read again): a dead root
    runs the job `after root.failed` and skips the one reading its output and the one after it succeeded."""
    flow = FlowPlan(
        name="fails",
        jobs={
            "root": job("root", "job_tasks.always_fails", {"message": {"lit": "no"}}),
            "reads": job("reads", "job_tasks.add", {"x": {"out": "root"}}, ["root"]),
            "on_fail": job("on_fail", "job_tasks.add", {"x": {"lit": 5}}).model_copy(
                update={"waits_for": ["root"], "after": {"status": ["root", "failed"]}}
            ),
            "on_ok": job("on_ok", "job_tasks.add", {"x": {"lit": 6}}).model_copy(
                update={"waits_for": ["root"], "after": {"status": ["root", "succeeded"]}}
            ),
        },
        order=["root", "reads", "on_fail", "on_ok"],
    )
    await client.deploy(plan_with(flow))
    await start_worker(TASKS)
    info = await client.wait(await client.start_run("fails"), timeout=20)
    states = {name: info.jobs[name].state for name in flow.order}
    assert states == {"root": "dead", "reads": "skipped", "on_fail": "succeeded", "on_ok": "skipped"}, info
    assert info.state == "failed"


async def test_a_released_signal_job_without_delay_ms_waits_for_its_payload(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    """Records of this layout, sent flat by hand: `delay_ms` is left out when 0, a signal job's too; the
    signal job, released by its upstream's end, waits for its payload and is not queued as a task."""
    await client.deploy(plan_with(chain()))
    run_id, now = new_run_id(), now_ms()
    fields = {"flow": "chain", "version": "1", "plan_id": chain().id, "params": "{}"}
    records = [
        {"name": "a", "deps_left": "0", "dependents": '["s"]', "queue": "default", "prio": "2"}
        | {"task": "job_tasks.add", "flow": "chain", "args": '{"x":{"lit":1}}'},
        {"name": "s", "deps_left": "1", "queue": "default", "prio": "2", "task": "signal", "signal": "0"}
        | {"flow": "chain", "args": "{}"},
    ]
    call = ScriptCall(
        "submit_run",
        [client.keys.run(run_id), client.keys.runs],
        [now, run_id, json.dumps(fields), *run_jobs(records)],
    )
    assert await client.scripts.run(call) == 1
    await start_worker(TASKS)
    for _ in range(200):
        if await redis.hget(client.keys.job(f"{run_id}.s"), "state") != "waiting":
            break
        await asyncio.sleep(0.05)
    assert await redis.hget(client.keys.job(f"{run_id}.s"), "state") == "awaiting"


def after_root(name: str) -> JobPlan:
    """A job that waits for `root` and reads nothing of it."""
    return job(name, "job_tasks.add", {"x": {"lit": 2}}, ["root"]).model_copy(update={"data_deps": []})


async def test_a_listed_dependent_is_released_at_the_level_it_was_moved_to_while_it_waited(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    """A dependent its upstream lists with its `after` (runs.py _listed) is released reading its state and
    level from its record: reprioritized while it waits, it runs at the new level; cancelled, it stays so."""
    flow = FlowPlan(
        name="moved",
        jobs={
            "root": job("root", "job_tasks.add", {"x": {"lit": 1}}),
            "moved": after_root("moved"),
            "gone": after_root("gone"),
            "last": job("last", "job_tasks.add", {"x": {"lit": 4}}).model_copy(
                update={"waits_for": ["moved", "gone"], "after": {"status": ["moved", "succeeded"]}}
            ),
        },
        order=["root", "moved", "gone", "last"],
    )
    await client.deploy(plan_with(flow))
    run_id = await client.start_run("moved")
    root = await redis.hgetall(client.keys.job(f"{run_id}.root"))
    assert all(isinstance(d, list) for d in json.loads(root["dependents"])), root
    assert await client.reprioritize(f"{run_id}.moved", "critical") == "updated"
    await client.cancel(f"{run_id}.gone")
    await start_worker(TASKS)
    info = await client.wait(run_id, timeout=20)
    assert {n: info.jobs[n].state for n in flow.order} == {
        "root": "succeeded",
        "moved": "succeeded",
        "gone": "cancelled",
        "last": "succeeded",
    }, info
    moved = await redis.hgetall(client.keys.job(f"{run_id}.moved"))
    assert (moved["prio"], moved["stream"]) == ("0", client.keys.stream("default", 0))


def test_a_long_after_is_not_repeated_in_the_upstream_records() -> None:
    """An `after` longer than AFTER_LISTED is read from the dependent's own record (each upstream would hold
    a copy of it); a job with a delay, options … is always listed by name."""
    names = [f"c{i}" for i in range(40)]
    jobs = {"root": job("root", "job_tasks.add", {"x": {"lit": 1}})}
    for name in names:
        jobs[name] = after_root(name)
    jobs["join"] = job("join", "job_tasks.add", {"x": {"lit": 3}}).model_copy(
        update={"waits_for": names, "after": {"all": [{"status": [n, "succeeded"]} for n in names]}}
    )
    jobs["late"] = job("late", "job_tasks.add", {"x": {"lit": 3}}).model_copy(
        update={"waits_for": ["root"], "delay_ms": 10}
    )
    flow = FlowPlan(name="wide", jobs=jobs, order=["root", *names, "join", "late"])
    records = {r["name"]: r for r in job_records(flow)}
    assert json.loads(records["c0"]["dependents"]) == ["join"]
    assert json.loads(records["root"]["dependents"])[:2] == [["c0"], ["c1"]]
    assert json.loads(records["root"]["dependents"])[-1] == "late"


async def test_an_end_that_sends_back_what_its_start_gave_is_fenced_by_its_token(
    client: Client, redis: Redis
) -> None:
    """A run job's end with what its start gave (records.StartKnown in finish_many's ARGV: stream, entry,
    run, dependents; the record is not read for them) is still fenced by the record's token, and releases
    the dependents it names; the same end without them reads the record (a worker of an older start)."""
    await client.deploy(plan_with(chain()))
    run_id = await client.start_run("chain")
    keys, scripts = client.keys, client.scripts
    stream = keys.stream("default", 2)
    await redis.xgroup_create(stream, "tqflow", id="0", mkstream=True)  # (a worker's start makes it)
    [row] = await scripts.run(calls.fetch(keys, now_ms(), "w1", "w1:t:", 60_000, 10, [(stream, 10)]))
    assert row[0] == f"{run_id}.a"
    _, known = run_context(row[10], row[0])
    assert known == StartKnown(stream, known.entry if known else "", run_id, "", '["b"]'), known
    assert known is not None
    end = [row[0], row[1], "succeeded", "J-|3", 0, "", now_ms(), row[3], *calls.ends_known(known)]
    forged = [row[0], "w1:t:forged", *end[2:]]
    assert await scripts.run(calls.finish_many(keys, now_ms(), 0, [forged], "w1")) == ["stale"]
    assert await redis.hget(keys.job(row[0]), "state") == "running"
    assert await scripts.run(calls.finish_many(keys, now_ms(), 0, [end], "w1")) == ["succeeded"]
    assert await scripts.run(calls.finish_many(keys, now_ms(), 0, [end], "w1")) == ["stale"]  # once
    assert await redis.hget(keys.job(f"{run_id}.b"), "state") == "queued"  # released by a's end
    [row] = await scripts.run(calls.fetch(keys, now_ms(), "w1", "w1:t:", 60_000, 10, [(stream, 10)]))
    assert row[0] == f"{run_id}.b"
    plain = [row[0], row[1], "succeeded", "J-|13", 0, "", now_ms(), row[3]]  # nothing sent back: read
    lean = await client.enqueue("job_tasks.add", x=1)  # a lean job's end in the same call (10 fields)
    [lean_row] = await scripts.run(calls.fetch(keys, now_ms(), "w1", "w1:t:", 60_000, 10, [(stream, 10)]))
    assert lean_row[0] == str(lean) and lean_row[1].startswith("@")
    lean_end = [lean_row[0], lean_row[1], "succeeded", "J-|2", 0, "", now_ms(), lean_row[3], lean_row[4], ""]
    both = calls.finish_many(keys, now_ms(), 0, [end, lean_end, plain], "w1")  # 14, 10 and 8 (padded) fields
    assert await scripts.run(both) == ["stale", "succeeded", "succeeded"]
    assert await redis.hget(keys.job(f"{run_id}.c"), "state") == "queued"
    assert await redis.xlen(stream) == 1  # a's, the lean job's and b's entries acked and dropped: c's is left


def test_a_run_context_is_read_from_its_lines_its_outputs_and_older_json() -> None:
    """The start sends a run job's context as lines (no cjson.encode in Redis), then what its end needs (its
    stream, entry and dependents: the worker sends them back), with its upstream outputs as items after
    them; a fan-out item's, or an older tqflow's, is JSON (the end reads its record); garbage raises."""
    end = "\n{t}:q:default:2\n1-1\n" + '["c"]'
    lines = "\nR1\nb\nchain\n" + '{"x":{"out":"a"}}' + "\n\n\n\n{}\n1700" + end
    context, known = run_context(lines, "R1.b")
    assert context == {
        "run": "R1",
        "name": "b",
        "flow": "chain",
        "args": '{"x":{"out":"a"}}',
        "params": "{}",
        "created": "1700",
        "outputs": {},
    }
    assert known == StartKnown("{t}:q:default:2", "1-1", "R1", "", '["c"]')
    got, _ = run_context([lines, "a", "J-|3", "z", None], "R1.b")
    assert got is not None and got["outputs"] == {"a": "J-|3", "z": None}
    when = '{"status":["a","done"]}'
    unnamed, known = run_context("\nR1\n\nchain\n{}\n" + when + "\n\n\n\n\n\n1-1\n", "R1.b")
    assert unnamed is not None and unnamed["name"] == "b" and unnamed["when"] == when
    assert unnamed["params"] is None and "created" not in unnamed and known is None  # no stream: none known
    older = json.dumps({"run": "R1", "name": "b", "flow": "chain", "args": "{}", "outputs": {}, "params": 1})
    assert run_context(older, "R1.b") == (json.loads(older), None)
    item = {"parent": "R1.f", "of_run": "R1", "flow": "chain"}
    assert run_context(json.dumps(item), "R1.f.0") == (item, None)
    assert run_context(None, "x") == (None, None) and run_context(False, "x") == (None, None)
    for bad in (lines + "\nextra", lines[: -len(end)], "[1]", [lines, "a"], 3):
        try:
            run_context(bad, "R1.b")
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was read")


def test_a_finisher_call_stays_under_a_thousand_arguments() -> None:
    """finish_many takes 10 fields a lean end and 14 a run job's that sends back what its start gave: the
    finisher cuts its batches by arguments (a job key and its fields each), not only by count."""
    lean: Any = (["j", "@1-1", "succeeded", "J-|1", 0, "", 1, "t", "", ""], None, "", None)
    run: Any = (
        ["j", "t:1", "succeeded", "J-|1", 0, "", 1, "t", *calls.ends_known(["s", "1-1", "R", "", ""])],
        0,
        "",
        0,
    )
    assert finisher._cut([lean] * 200) == finisher.BATCH
    assert finisher._cut([run] * 200) == (finisher.ARGUMENTS - 3) // 15
    assert finisher._cut([run]) == 1
    mixed = [lean, run] * 100
    cut = finisher._cut(mixed)
    assert (
        3 + sum(1 + len(p[0]) for p in mixed[:cut])
        <= finisher.ARGUMENTS
        < 3 + sum(1 + len(p[0]) for p in mixed[: cut + 1])
    )
