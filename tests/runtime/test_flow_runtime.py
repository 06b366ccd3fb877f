"""Flow semantics the compiler will emit, tested with plans built in Python: fan-out and fan-in,
`when`, cancellation of a run, and jobs on the process pool."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog
import structlog.testing

from tqflow.plan import FlowPlan, OutputPlan, Plan, RetryPlan
from tqflow.runtime.client import Client
from tqflow.runtime.jobs import JobFailed
from tqflow.runtime.registry import load_tasks

from helpers import FLOWS, WorkerFactory, task_ref
from helpers import job_plan as job

TASKS = {**load_tasks(["job_tasks", "sample_tasks"], [FLOWS])}
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


def fan_flow(n: int) -> Plan:
    jobs = {
        "src": job("src", "sample_tasks.source", {"n": {"param": "n"}}),
        "each": job(
            "each",
            "job_tasks.add",
            {"x": {"var": "v"}, "y": {"lit": 100}},
            ["src"],
            fan_out={"var": "v", "over": {"out": "src"}},
        ),
        "total": job("total", "sample_tasks.total", {"values": {"out": "each"}}, ["each"]),
    }
    from tqflow.plan import ParamPlan

    flow = FlowPlan(
        name="fan",
        params=[ParamPlan(name="n", type="Int", default={"lit": n})],
        jobs=jobs,
        order=["src", "each", "total"],
        outputs=[
            OutputPlan(name="items", value={"out": "each"}),
            OutputPlan(name="sum", value={"out": "total"}),
        ],
    )
    return Plan(source="test", flows={"fan": flow})


async def test_fan_out_and_fan_in(client: Client, start_worker: WorkerFactory) -> None:
    await client.deploy(fan_flow(5))
    await start_worker(TASKS, concurrency=8)
    info = await client.wait(await client.start_run("fan", {"n": 25}), timeout=30)
    assert info.state == "succeeded", info
    assert info.outputs["items"] == [i + 100 for i in range(25)]  # item order, whatever finished first
    assert info.outputs["sum"] == sum(i + 100 for i in range(25))


async def test_fan_out_over_an_empty_list_and_a_big_one(client: Client, start_worker: WorkerFactory) -> None:
    await client.deploy(fan_flow(0))
    await start_worker(TASKS, concurrency=50)
    empty = await client.wait(await client.start_run("fan", {"n": 0}), timeout=30)
    assert (empty.state, empty.outputs) == ("succeeded", {"items": [], "sum": 0})
    big = await client.wait(await client.start_run("fan", {"n": 1500}), timeout=60)  # staged: > 1,000 items
    assert big.state == "succeeded"
    assert len(big.outputs["items"]) == 1500


async def test_a_failed_fan_out_item_fails_the_fan_in(client: Client, start_worker: WorkerFactory) -> None:
    plan = fan_flow(3)
    flow = plan.flows["fan"]
    each = flow.jobs["each"].model_copy(
        update={
            "task": task_ref("job_tasks.always_fails"),
            "args": {"message": {"fstr": ["item ", {"var": "v"}]}},
        }
    )
    flow = flow.model_copy(update={"jobs": {**flow.jobs, "each": each}})
    await client.deploy(Plan(source="t", flows={"fan": flow}))
    await start_worker(TASKS)
    info = await client.wait(await client.start_run("fan", {"n": 2}), timeout=30)
    assert info.state == "failed"
    assert {n: j.state for n, j in info.jobs.items()} == {
        "src": "succeeded",
        "each": "dead",
        "total": "skipped",
    }
    run_id = info.id
    assert info.jobs["each"].error == {
        "type": "FanOutFailed",
        "message": "2 of 2 items did not succeed: item 0 (dead), 1 (dead)",  # it names the failed items
        "items": [
            {"item": 0, "id": f"{run_id}.each.0", "state": "dead"},
            {"item": 1, "id": f"{run_id}.each.1", "state": "dead"},
        ],
    }


async def test_when_false_skips_and_the_skip_propagates(client: Client, start_worker: WorkerFactory) -> None:
    jobs = {
        "a": job("a", "job_tasks.add", {"x": {"lit": 1}}, when={"lit": False}),
        "b": job("b", "job_tasks.add", {"x": {"out": "a"}}, ["a"]),
        "c": job("c", "job_tasks.add", {"x": {"lit": 2}}),
    }
    flow = FlowPlan(name="w", jobs=jobs, order=["a", "b", "c"])
    await client.deploy(Plan(source="t", flows={"w": flow}))
    await start_worker(TASKS)
    info = await client.wait(await client.start_run("w"), timeout=20)
    assert {n: j.state for n, j in info.jobs.items()} == {"a": "skipped", "b": "skipped", "c": "succeeded"}
    assert info.state == "succeeded"


async def test_cancelling_a_run_ends_every_job(client: Client, start_worker: WorkerFactory) -> None:
    jobs = {
        "slow": job("slow", "job_tasks.sleeper", {"seconds": {"lit": 30}}),
        "after": job("after", "job_tasks.add", {"x": {"lit": 1}}, ["slow"]),
    }
    flow = FlowPlan(name="c", jobs=jobs, order=["slow", "after"])
    await client.deploy(Plan(source="t", flows={"c": flow}))
    await start_worker(TASKS)
    run_id = await client.start_run("c")
    for _ in range(100):
        if (await client.job(f"{run_id}.slow")).state == "running":
            break
        await asyncio.sleep(0.02)
    await client.cancel_run(run_id)
    info = await client.wait(run_id, timeout=10)
    assert info.state == "cancelled"
    # the running job was stopped; the one still waiting for it was cancelled with the run
    assert {n: j.state for n, j in info.jobs.items()} == {"slow": "cancelled", "after": "cancelled"}


async def test_process_pool_runs_cpu_tasks_and_kills_at_timeout(
    client: Client, start_worker: WorkerFactory
) -> None:
    await start_worker(TASKS, process_pool=1)
    assert await client.result(await client.enqueue(jt.cpu, n=1000), timeout=60) == sum(
        i * i for i in range(1000)
    )
    hung = await client.enqueue(jt.cpu_forever, timeout="500ms", retry=RetryPlan())
    with pytest.raises(JobFailed) as caught:
        await client.result(hung, timeout=30)
    assert caught.value.error["type"] == "Timeout"
    # the pool replaced the killed process and keeps working
    assert await client.result(await client.enqueue(jt.cpu, n=10), timeout=60) == 285


async def test_a_unique_flow_job_runs_once_per_key(client: Client, start_worker: WorkerFactory) -> None:
    from tqflow.plan import ParamPlan, UniquePlan

    def flow(conflict: str) -> FlowPlan:
        unique = UniquePlan(key={"param": "k"}, within_ms=60_000, conflict=conflict)  # type: ignore[arg-type]
        jobs = {"once": job("once", "job_tasks.add", {"x": {"lit": 1}}, unique=unique)}
        return FlowPlan(name="u", params=[ParamPlan(name="k", type="Str")], jobs=jobs, order=["once"])

    await client.deploy(Plan(source="t", flows={"u": flow("skip")}))
    await start_worker(TASKS)
    first = await client.wait(await client.start_run("u", {"k": "a"}), timeout=20)
    second = await client.wait(await client.start_run("u", {"k": "a"}), timeout=20)
    other = await client.wait(await client.start_run("u", {"k": "b"}), timeout=20)
    assert [r.jobs["once"].state for r in (first, second, other)] == ["succeeded", "skipped", "succeeded"]
    assert "holds its unique key" in (second.jobs["once"].reason or "")
    await client.deploy(Plan(source="t", flows={"u": flow("reject")}))
    rejected = await client.wait(await client.start_run("u", {"k": "a"}), timeout=20)
    assert rejected.state == "failed" and rejected.jobs["once"].error["type"] == "UniqueRejected"  # type: ignore[index]


async def test_cancelling_a_fan_out_cancels_its_items(client: Client, start_worker: WorkerFactory) -> None:
    jobs = {
        "src": job("src", "sample_tasks.source", {"n": {"lit": 6}}),
        "each": job(
            "each",
            "job_tasks.sleeper",
            {"seconds": {"lit": 30}},
            ["src"],
            fan_out={"var": "v", "over": {"out": "src"}},
        ),
        "after": job("after", "job_tasks.add", {"x": {"lit": 1}}, after={"status": ["each", "done"]}),
    }
    jobs["after"] = jobs["after"].model_copy(update={"waits_for": ["each"]})
    await client.deploy(
        Plan(source="t", flows={"f": FlowPlan(name="f", jobs=jobs, order=["src", "each", "after"])})
    )
    await start_worker(TASKS, concurrency=3)  # 3 items run, 3 wait on the queue
    run_id = await client.start_run("f")
    for _ in range(200):
        if (await client.job(f"{run_id}.each")).state == "fanout":
            break
        await asyncio.sleep(0.02)
    assert await client.cancel(f"{run_id}.each") == "cancelling"
    info = await client.wait(run_id, timeout=15)
    items = [(await client.job(f"{run_id}.each.{i}")).state for i in range(6)]
    assert items == ["cancelled"] * 6
    assert info.jobs["each"].state == "cancelled"
    assert info.jobs["after"].state == "succeeded"  # `after each.done` still runs
    assert info.state == "cancelled"


class Events:
    """A worker hook that keeps every attempt's start event."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    def attempt_started(self, event: Any) -> None:
        self.started.append(event)

    def attempt_finished(self, event: Any) -> None:
        pass


async def test_fan_out_items_carry_their_run_and_flow(client: Client, start_worker: WorkerFactory) -> None:
    from tqflow.runtime.alert_sinks import CallbackSink
    from tqflow.runtime.alerts import AlertMonitor, AlertSettings, Route
    from tqflow.runtime.inspect import Inspector
    from tqflow.runtime.logging import JobLogHooks
    from tqflow.runtime.store.payloads import PayloadSettings

    events = Events()
    # a worker that writes msgpack and zstd: items' results stay JSON, or the fan-in could not join them
    await start_worker(
        TASKS,
        hooks=[events, JobLogHooks()],
        concurrency=8,
        payloads=PayloadSettings(codec="msgpack", compression="zstd"),
    )
    await client.deploy(fan_flow(3))
    with structlog.testing.capture_logs() as logged:
        run_id = await client.start_run("fan", {"n": 3})
        info = await client.wait(run_id, timeout=30)
    assert info.state == "succeeded" and info.outputs["items"] == [100, 101, 102]
    items = [e for e in events.started if e.job_id.startswith(f"{run_id}.each.")]
    assert len(items) == 3 and {(e.run_id, e.flow) for e in items} == {(run_id, "fan")}
    # the items' log lines name their run and flow too (the worker's "job finished" line)
    item_lines = [line for line in logged if str(line.get("job", "")).startswith(f"{run_id}.each.")]
    finished = [line for line in item_lines if line["event"] == "job finished"]
    assert len(finished) == 3, item_lines
    assert {(line["run"], line["flow"]) for line in finished} == {(run_id, "fan")}

    # a dead item alerts a route scoped to its flow (and not one scoped to another flow)
    plan = fan_flow(2)
    flow = plan.flows["fan"]
    each = flow.jobs["each"].model_copy(
        update={
            "task": task_ref("job_tasks.always_fails"),
            "args": {"message": {"fstr": ["item ", {"var": "v"}]}},
        }
    )
    flow = flow.model_copy(update={"jobs": {**flow.jobs, "each": each}})
    await client.deploy(Plan(source="t", flows={"fan": flow}))
    mine: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    routes = [
        Route(CallbackSink(mine.append), kinds=frozenset({"job_dead"}), flows=frozenset({"fan"})),
        Route(CallbackSink(others.append), kinds=frozenset({"job_dead"}), flows=frozenset({"other"})),
    ]
    monitor = AlertMonitor(client.redis, client.keys.namespace, AlertSettings(routes=routes))
    await monitor.check()  # starts its cursors: what dies from now on alerts
    failed = await client.start_run("fan", {"n": 2})
    assert (await client.wait(failed, timeout=30)).state == "failed"
    child = await Inspector(client.redis, client.keys.namespace).job(f"{failed}.each.0")
    assert (child.run, child.flow, child.state) == (failed, "fan", "dead")
    await monitor.check()
    dead_items = {a["subject"] for a in mine if a["subject"].startswith(f"{failed}.each.")}
    assert dead_items == {f"{failed}.each.0", f"{failed}.each.1"}, mine
    assert all(a["flow"] == "fan" and a["details"]["run"] == failed for a in mine)
    assert others == []
