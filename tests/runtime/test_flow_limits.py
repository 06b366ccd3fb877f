"""Flow jobs take limits and fair share from the plan (LimitUse, LimiterPlan, FairPlan): keys from the
run's parameters, or from an upstream output once the job is ready (runtime/flow_controls.py)."""

from __future__ import annotations

import functools
import uuid
from typing import Any

import pytest

from tqflow.plan import FlowPlan, ParamPlan, Plan
from tqflow.plan.model import FairPlan, LimiterPlan, LimitUse, TriggerPlan
from tqflow.runtime.client import Client
from tqflow.runtime.limits import LimiterConflict
from tqflow.runtime.registry import load_tasks

from helpers import FLOWS, WorkerFactory, job_plan, plan_with

TASKS = load_tasks(["limit_tasks"], [FLOWS])
import limit_tasks as lt  # noqa: E402 - loaded from tests/flows above

job = functools.partial(job_plan, queue="limits")


def throttled(limiter: str, by: dict[str, Any]) -> FlowPlan:
    call = job(
        "call",
        "limit_tasks.hold",
        {"tag": {"param": "tag"}, "seconds": {"lit": 0.15}},
        ["who"],
        limits=[LimitUse(limiter=limiter, by=by)],
    )
    return FlowPlan(
        name=f"throttled-{limiter}",
        params=[ParamPlan(name="tag", type="String"), ParamPlan(name="customer", type="String")],
        jobs={"who": job("who", "limit_tasks.customer_of", {"name": {"param": "customer"}}), "call": call},
        order=["who", "call"],
        limiters={limiter: LimiterPlan(name=limiter, kind="concurrency", limit=1)},
    )


@pytest.mark.parametrize(
    "by",
    [
        {"param": "customer"},  # known when the run is submitted
        {"attr": [{"out": "who"}, "customer"]},  # known when `who` has run
        {"fstr": ["cust-", {"attr": [{"out": "who"}, "customer"]}]},
    ],
    ids=["param", "output", "fstring"],
)
async def test_a_flow_job_is_limited_per_key(
    client: Client, start_worker: WorkerFactory, by: dict[str, Any]
) -> None:
    t = uuid.uuid4().hex[:10]
    flow = throttled(f"per-customer-{t}", by)
    await client.deploy(plan_with(flow))
    runs = []
    for i in range(6):
        customer = "a" if i % 2 else "b"
        runs.append(await client.start_run(flow.name, {"tag": f"{t}-{customer}", "customer": customer}))
    await start_worker(TASKS, queues=["limits"], concurrency=10)
    for run in runs:
        assert (await client.wait(run, timeout=30)).state == "succeeded"
    assert lt.peak[f"{t}-a"] == 1 and lt.peak[f"{t}-b"] == 1


async def test_a_limit_key_that_cannot_be_evaluated_dead_letters_the_job(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = uuid.uuid4().hex[:10]
    flow = throttled(f"bad-{t}", {"attr": [{"out": "who"}, "no_such_field"]})
    await client.deploy(plan_with(flow))
    run = await client.start_run(flow.name, {"tag": t, "customer": "a"})
    await start_worker(TASKS, queues=["limits"], concurrency=2)
    info = await client.wait(run, timeout=20)
    assert info.state == "failed"
    call = info.jobs["call"]
    assert call.state == "dead"
    assert "no field `no_such_field`" in str(call.error), call.error


async def test_a_fan_outs_items_each_take_the_limit(client: Client, start_worker: WorkerFactory) -> None:
    t = uuid.uuid4().hex[:10]
    name = f"fan-{t}"
    each = job(
        "each",
        "limit_tasks.hold",
        {"tag": {"lit": t}, "seconds": {"lit": 0.05}},
        ["src"],
        fan_out={"var": "v", "over": {"out": "src"}},
        limits=[LimitUse(limiter=name)],
    )
    flow = FlowPlan(
        name=name,
        jobs={"src": job("src", "limit_tasks.items", {"n": {"lit": 12}}), "each": each},
        order=["src", "each"],
        limiters={name: LimiterPlan(name=name, kind="concurrency", limit=3)},
    )
    await client.deploy(plan_with(flow))
    run = await client.start_run(name)
    await start_worker(TASKS, queues=["limits"], concurrency=10)
    assert (await client.wait(run, timeout=30)).state == "succeeded"
    assert lt.peak[t] == 3


async def test_fair_by_a_parameter_interleaves_runs_of_two_tenants(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = uuid.uuid4().hex[:10]
    work = job(
        "work",
        "limit_tasks.hold",
        {"tag": {"lit": t}, "seconds": {"lit": 0}, "label": {"param": "tenant"}},
        fair=FairPlan(key={"param": "tenant"}),
    )
    flow = FlowPlan(
        name=f"fair-{t}",
        params=[ParamPlan(name="tenant", type="String")],
        jobs={"work": work},
        order=["work"],
    )
    await client.deploy(plan_with(flow))
    runs = [await client.start_run(flow.name, {"tenant": "big"}) for _ in range(40)]
    runs += [await client.start_run(flow.name, {"tenant": "small"}) for _ in range(10)]
    await start_worker(TASKS, queues=["limits"], concurrency=1, fetch_batch=1)
    for run in runs:
        await client.wait(run, timeout=30)
    first = lt.done[t][:28]  # FIFO would run 40 of `big` first
    assert first.count("small") >= 9, lt.done[t]


async def test_a_plan_defining_one_limiter_twice_is_not_deployed(client: Client) -> None:
    a = throttled("dup", {"param": "customer"})
    b = throttled("dup", {"param": "customer"}).model_copy(
        update={"name": "other", "limiters": {"dup": LimiterPlan(name="dup", kind="concurrency", limit=2)}}
    )
    with pytest.raises(LimiterConflict, match="'dup' has two definitions"):
        await client.deploy(Plan(source="t", flows={"a": a.model_copy(update={"name": "a"}), "other": b}))
    missing = a.model_copy(update={"name": "missing", "limiters": {}})
    with pytest.raises(ValueError, match="uses limiter `dup`, not defined"):
        await client.deploy(Plan(source="t", flows={"missing": missing}))


async def test_a_fan_out_item_is_limited_and_served_fairly_by_its_own_value(
    client: Client, start_worker: WorkerFactory
) -> None:
    """`limit per_item by v % 2`-like keys: each item's key reads the item (`var`), known only when the
    parent's attempt evaluates the list; the items of one key never run together."""
    t = uuid.uuid4().hex[:10]
    name = f"items-{t}"
    key = {"fstr": ["k", {"index": [{"lit": ["a", "b", "a", "b", "a", "b"]}, {"var": "v"}]}]}
    each = job(
        "each",
        "limit_tasks.hold",
        {"tag": {"fstr": [t, "-", key]}, "seconds": {"lit": 0.1}},
        ["src"],
        fan_out={"var": "v", "over": {"out": "src"}},
        limits=[LimitUse(limiter=name, by=key)],
        fair=FairPlan(key=key),
    )
    flow = FlowPlan(
        name=name,
        jobs={"src": job("src", "limit_tasks.items", {"n": {"lit": 6}}), "each": each},
        order=["src", "each"],
        limiters={name: LimiterPlan(name=name, kind="concurrency", limit=1)},
    )
    await client.deploy(plan_with(flow))
    run = await client.start_run(name)
    await start_worker(TASKS, queues=["limits"], concurrency=10)
    assert (await client.wait(run, timeout=30)).state == "succeeded"
    assert lt.peak[f"{t}-ka"] == 1 and lt.peak[f"{t}-kb"] == 1
    assert len(lt.done[f"{t}-ka"]) == 3 and len(lt.done[f"{t}-kb"]) == 3


async def test_an_event_runs_limit_key_comes_from_its_params(
    client: Client, start_worker: WorkerFactory
) -> None:
    """A run an event starts evaluates `limit … by params.customer` from the params its trigger gave it,
    as a run started by name does (events.py once evaluated the keys with no params: the emit failed)."""
    t = uuid.uuid4().hex[:10]
    name = f"order-{t}"
    event = {"var": "event"}
    trigger = TriggerPlan(
        name="event:0",
        kind="event",
        event=name,
        params={"tag": {"attr": [event, "tag"]}, "customer": {"attr": [event, "customer"]}},
    )
    flow = throttled(f"per-customer-{t}", {"param": "customer"}).model_copy(
        update={"name": f"evented-{t}", "triggers": [trigger]}
    )
    await client.deploy(plan_with(flow))
    started = []
    for i in range(6):
        customer = "a" if i % 2 else "b"
        started += await client.emit(name, {"tag": f"{t}-{customer}", "customer": customer})
    assert [r.status for r in started] == ["started"] * 6
    await start_worker(TASKS, queues=["limits"], concurrency=10)
    for run in started:
        assert (await client.wait(run.run_id, timeout=30)).state == "succeeded"
    assert lt.peak[f"{t}-a"] == 1 and lt.peak[f"{t}-b"] == 1  # one slot per customer, not one for all
