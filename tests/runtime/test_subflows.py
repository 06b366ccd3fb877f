"""Sub-flow jobs against a real Redis (`job sum = flow sum_up(n=…)`, tests/flows/subflows.tqflow): the child
run's outputs feed the parent's downstream jobs; a child that fails fails the job and `after sum.failed`
runs; a retry starts a new child run; cancelling the parent cancels the child; the waiting job holds no
worker slot; a repeated start of the same child does nothing. Also run on the 3-master cluster
(TQFLOW_TEST_TOPOLOGY=cluster)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from tqflow.compiler import compile_file
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import RunInfo
from tqflow.runtime.subflows import SubflowSteps, child_run_id

from cli_runner import tqc
from helpers import FLOWS, WorkerFactory


async def deploy(client: Client) -> dict[str, Any]:
    result = compile_file(FLOWS / "subflows.tqflow")
    assert result.plan is not None, [d.message for d in result.diagnostics]
    await client.deploy(result.plan)
    return load_tasks(["subflow_tasks"], [FLOWS])


async def finished(client: Client, run_id: str) -> RunInfo:
    info = await client.wait(run_id, 30)
    assert info.finished, info.jobs
    return info


async def record(redis: Redis, client: Client, job_id: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in (await redis.hgetall(client.keys.job(job_id))).items()}


async def until(redis: Redis, client: Client, job_id: str, wanted: str) -> None:
    for _ in range(400):
        if await redis.hget(client.keys.job(job_id), "state") == wanted:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{job_id} is {await redis.hget(client.keys.job(job_id), 'state')}, not {wanted}")


async def test_the_child_outputs_feed_the_parent_and_the_wait_holds_no_slot(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    # one worker with one slot: a parent job that held its slot while the child ran would never end
    await start_worker(await deploy(client), concurrency=1)
    run_id = await client.start_run("nightly", {"n": 4})
    info = await finished(client, run_id)
    assert info.state == "succeeded", info.jobs
    child = child_run_id(run_id, "sum", 1)
    assert info.jobs["sum"].result == {"total": 10, "count": 4}  # 1+2+3+4, computed by the child's jobs
    assert info.jobs["report"].result == "4 numbers add up to 10"
    assert info.outputs == {"line": "4 numbers add up to 10"}
    assert info.jobs["alarm"].state == "skipped"
    child_info = await client.run_info(child)
    assert child_info.flow == "sum_up" and child_info.state == "succeeded"
    assert child_info.params == {"n": 4, "fail": False, "marker": ""}
    assert child_info.outputs == {"total": 10, "count": 4}
    job = await record(redis, client, f"{run_id}.sum")
    assert (job["child"], job["attempt"], job["launches"]) == (child, "1", "1")
    assert await redis.hget(client.keys.run(child), "parent_job") == f"{run_id}.sum"
    assert await redis.zcard(client.keys.subflows) == 0  # the outbox is empty again


async def test_a_failed_child_fails_the_job_and_the_failure_path_runs(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("nightly", {"fail": True})
    info = await finished(client, run_id)
    child = child_run_id(run_id, "sum", 1)
    assert info.state == "failed"
    assert info.jobs["sum"].state == "dead"
    assert info.jobs["sum"].error == {
        "type": "SubflowFailed",
        "message": f"child run {child} of flow sum_up failed",
        "child": child,
    }
    assert info.jobs["alarm"].result == "alarm: the sum failed"
    assert info.jobs["report"].state == "skipped"
    child_info = await client.run_info(child)
    assert child_info.state == "failed" and child_info.jobs["add"].state == "dead"


async def test_a_retry_runs_the_whole_child_again_as_a_new_child_run(
    client: Client, redis: Redis, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    await start_worker(await deploy(client))
    marker = tmp_path / "failed-once"
    run_id = await client.start_run("retried", {"marker": str(marker)})
    info = await finished(client, run_id)
    assert info.state == "succeeded", info.jobs
    assert info.outputs == {"total": 6}
    first, second = child_run_id(run_id, "sum", 1), child_run_id(run_id, "sum", 2)
    assert (await client.run_info(first)).state == "failed"
    again = await client.run_info(second)
    assert again.state == "succeeded" and again.jobs["nums"].attempt == 1  # the whole child, from its start
    job = await record(redis, client, f"{run_id}.sum")
    assert (job["child"], job["attempt"], job["launches"]) == (second, "2", "2")
    assert marker.read_text() == "failed once"


async def test_cancelling_the_parent_cancels_the_child(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("waits")
    child = child_run_id(run_id, "inner", 1)
    await until(redis, client, f"{child}.nap", "running")
    assert await redis.hget(client.keys.job(f"{run_id}.inner"), "state") == "child"
    await client.cancel_run(run_id)
    info = await finished(client, run_id)
    assert info.state == "cancelled"
    assert info.jobs["inner"].state == "cancelled"
    assert info.jobs["after_inner"].state in ("skipped", "cancelled")
    child_info = await finished(client, child)
    assert child_info.state == "cancelled"
    assert child_info.jobs["nap"].state == "cancelled" and child_info.jobs["later"].state == "cancelled"


async def test_a_repeated_start_starts_one_child(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    tasks = await deploy(client)
    run_id = await client.start_run("nightly", {"n": 2})  # no worker yet: the job waits in the outbox
    job_id = f"{run_id}.sum"
    await until(redis, client, job_id, "starting")
    assert await redis.zscore(client.keys.subflows, job_id) is not None
    steps = [SubflowSteps(redis, client.keys, client.scripts) for _ in range(3)]
    statuses = await asyncio.gather(*(s.step(job_id) for s in steps), steps[0].step(job_id))
    assert sorted(statuses).count("started") == 1, statuses
    assert await redis.exists(client.keys.run(child_run_id(run_id, "sum", 1))) == 1
    assert await redis.exists(client.keys.run(child_run_id(run_id, "sum", 2))) == 0
    await start_worker(tasks)
    info = await finished(client, run_id)
    assert info.state == "succeeded" and info.jobs["sum"].result == {"total": 3, "count": 2}
    assert json.loads(await redis.hget(client.keys.job(job_id), "subflow"))["flow"] == "sum_up"


async def test_the_child_run_shows_on_its_parent_job_and_links_back(
    client: Client, redis: Redis, redis_url: str, namespace: str, start_worker: WorkerFactory
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("nightly", {"n": 3})
    await finished(client, run_id)
    child = child_run_id(run_id, "sum", 1)
    # the Python client
    assert (await client.run_info(run_id)).jobs["sum"].child_run == child
    assert (await client.run_info(child)).parent_job == f"{run_id}.sum"
    # the REST API (and so the dashboard, which reads it)
    app = create_app(ApiSettings(redis_url=redis_url, namespace=namespace))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        parent = (await http.get(f"/api/runs/{run_id}")).json()
        jobs = {j["name"]: j for j in parent["jobs"]}
        assert jobs["sum"]["child_run"] == child and jobs["report"]["child_run"] is None
        assert jobs["sum"]["task"] == "tqflow.subflow" and jobs["sum"]["result"] == {"total": 6, "count": 3}
        back = (await http.get(f"/api/runs/{child}")).json()
        assert (back["parent_job"], back["parent_run"], back["flow"]) == (f"{run_id}.sum", run_id, "sum_up")
    # the command line
    where = ["--redis", redis_url, "--namespace", namespace]
    shown = await asyncio.to_thread(tqc, "status", run_id, *where)
    assert shown.returncode == 0, shown.stderr
    assert f"child run {child}" in shown.stdout.replace("\n", "")
    linked = await asyncio.to_thread(tqc, "status", child, *where)
    assert f"child run of job {run_id}.sum (tqc status {run_id})" in linked.stdout
    as_json = json.loads((await asyncio.to_thread(tqc, "status", run_id, "--json", *where)).stdout)
    assert {j["name"]: j["child_run"] for j in as_json["jobs"]}["sum"] == child


async def test_resuming_a_parent_whose_child_failed_starts_a_new_child(
    client: Client, redis: Redis, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("once", {"marker": str(tmp_path / "failed-once")})
    assert (await finished(client, run_id)).state == "failed"
    first = child_run_id(run_id, "sum", 1)
    assert (await client.run_info(first)).state == "failed"
    await client.resume(run_id)
    info = await finished(client, run_id)
    assert info.state == "succeeded" and info.outputs == {"total": 15}, info.jobs
    assert info.jobs["sum"].child_run == child_run_id(run_id, "sum", 2)
    assert (await client.run_info(first)).state == "failed"  # the failed child keeps its record


async def test_the_example_runs_a_report_flow_per_region(client: Client, start_worker: WorkerFactory) -> None:
    folder = Path(__file__).parents[2] / "examples" / "subflows"
    result = compile_file(folder / "nightly.tqflow")
    assert result.plan is not None, [d.message for d in result.diagnostics]
    assert set(result.plan.flows) == {"nightly", "report.region_report"}
    await client.deploy(result.plan)
    await start_worker(load_tasks(["reports"], [folder]), concurrency=1)
    run_id = await client.start_run("nightly")
    info = await finished(client, run_id)
    assert info.state == "succeeded", info.jobs
    assert info.outputs == {"summary": "eu 245, us 320, together 565"}  # 120+80+45 and 300+20
    assert info.jobs["eu"].result == {"total": 245, "orders": [120, 80, 45]}
    assert info.jobs["page"].state == "skipped"
