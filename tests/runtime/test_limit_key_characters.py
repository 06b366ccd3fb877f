"""A limit key or fair key with an ASCII control character is refused where it is given, with what was wrong:
a tab or a newline would split the lines of a job's held slots (`lh`, lua/limits.lua), and that slot would not
be given back at the job's end (only once a full semaphore looked at its holders' leases)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from test_flow_limits import throttled

from tqflow.plan import FlowPlan, ParamPlan
from tqflow.plan.model import FairPlan
from tqflow.runtime import catalog
from tqflow.runtime.client import Client
from tqflow.runtime.expressions import ExpressionError
from tqflow.runtime.limits import Limiter
from tqflow.runtime.registry import load_tasks

from helpers import FLOWS, WorkerFactory, job_plan, plan_with

TASKS = load_tasks(["limit_tasks"], [FLOWS])
import limit_tasks as lt  # noqa: E402 - loaded from tests/flows above

BAD = ["a\tb", "a\nb", "a\x00b", "a\x7fb"]


@pytest.mark.parametrize("key", BAD)
async def test_the_python_api_refuses_a_key_with_a_control_character(client: Client, key: str) -> None:
    limiter = Limiter(f"keys-{uuid.uuid4().hex[:8]}", concurrency=1)
    with pytest.raises(ValueError, match="control character"):
        limiter.by(key)
    with pytest.raises(ValueError, match="fair_key has a control character"):
        await client.enqueue(lt.hold, tag="x", fair_key=key)


async def test_printable_keys_of_any_script_are_taken(client: Client, start_worker: WorkerFactory) -> None:
    t = uuid.uuid4().hex[:8]
    limiter = Limiter(f"keys-{t}", concurrency=1)
    ids = [
        await client.enqueue(lt.hold, tag=t, seconds=0.01, limit=limiter.by(key), fair_key=key)
        for key in ("client 7", "çà-日本", "a|b{c}")
    ]
    await start_worker(TASKS, queues=["limits"], concurrency=3)
    for job in ids:
        await client.result(job, timeout=10)


async def test_the_rest_api_answers_422_for_a_key_with_a_control_character(
    api: httpx.AsyncClient, client: Client
) -> None:
    await catalog.publish(client.redis, client.keys, TASKS)
    body = {"task": "limit_tasks.hold", "queue": "limits", "kwargs": {"tag": "x", "seconds": 0.1}}
    limited = await api.post(
        "/api/jobs", json={**body, "limit": [{"name": "k", "concurrency": 1, "key": "a\nb"}]}
    )
    assert limited.status_code == 422 and "control character" in limited.text, limited.text
    fair = await api.post("/api/jobs", json={**body, "fair_key": "a\tb"})
    assert fair.status_code == 422 and "control character" in fair.text, fair.text


async def test_a_flow_jobs_key_from_its_params_is_refused_when_the_run_is_submitted(client: Client) -> None:
    flow = throttled(f"ctl-{uuid.uuid4().hex[:10]}", {"param": "customer"})
    await client.deploy(plan_with(flow))
    with pytest.raises(ExpressionError, match="control character"):
        await client.start_run(flow.name, {"tag": "x", "customer": "a\tb"})


async def test_a_flow_jobs_key_from_an_output_dead_letters_the_job(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = uuid.uuid4().hex[:10]
    flow = throttled(f"ctl-{t}", {"attr": [{"out": "who"}, "customer"]})  # known once `who` has run
    await client.deploy(plan_with(flow))
    run = await client.start_run(flow.name, {"tag": t, "customer": "a\nb"})
    await start_worker(TASKS, queues=["limits"], concurrency=2)
    info = await client.wait(run, timeout=20)
    assert info.state == "failed"
    assert info.jobs["call"].state == "dead"
    assert "control character" in str(info.jobs["call"].error), info.jobs["call"].error


async def test_a_flow_jobs_fair_key_from_an_output_with_a_control_character_is_served_unfairly(
    client: Client, start_worker: WorkerFactory
) -> None:
    t = uuid.uuid4().hex[:10]
    who = job_plan("who", "limit_tasks.customer_of", {"name": {"param": "customer"}}, queue="limits")
    work = job_plan(
        "work",
        "limit_tasks.hold",
        {"tag": {"lit": t}, "seconds": {"lit": 0}},
        ["who"],
        queue="limits",
        fair=FairPlan(key={"attr": [{"out": "who"}, "customer"]}),
    )
    flow = FlowPlan(
        name=f"fair-ctl-{t}",
        params=[ParamPlan(name="customer", type="String")],
        jobs={"who": who, "work": work},
        order=["who", "work"],
    )
    await client.deploy(plan_with(flow))
    run = await client.start_run(flow.name, {"customer": "a\nb"})
    await start_worker(TASKS, queues=["limits"], concurrency=2)
    info = await client.wait(run, timeout=20)
    # as any fair key that cannot be evaluated (docs/runtime.md): first come, first served, and why
    assert info.state == "succeeded"
    why = await client.redis.hget(client.keys.job(f"{run}.work"), "fair_error")
    assert why is not None and "control character" in str(why), why
