"""Operator rough edges, each against a real Redis: a named DLQ's replay, a replay that succeeded, bad
`--state` values, what `tqc cancel RUN` prints, and `tqc jobs show --json` in the API's schema."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tqflow.cli import exit_codes
from tqflow.compiler import compile_file
from tqflow.runtime.client import Client
from tqflow.runtime.params import ParamError
from tqflow.runtime.registry import load_tasks

from .conftest import OBS_FLOWS, watch_plan
from .test_cli import tqc
from helpers import WorkerFactory

TASKS = load_tasks(["policy_tasks"], [OBS_FLOWS])


async def until(check: Any, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_replay_from_a_named_dlq_without_naming_it_and_the_old_error_goes(
    client: Client,
    redis: Redis,
    redis_url: str,
    namespace: str,
    start_worker: WorkerFactory,
    api: httpx.AsyncClient,
) -> None:
    await start_worker(TASKS, queues=["pol"])
    job_id = await client.enqueue("pol.once", key=f"{namespace}-a", queue="pol", dead_letter="pol-dead")
    named = client.keys.dead_letter("pol-dead")

    async def dead() -> bool:
        return bool(await redis.zscore(named, job_id))

    await until(dead)
    shown = await tqc(redis_url, namespace, "dlq", "replay", job_id)  # no --queue
    assert shown.exit_code == 0 and f"{job_id}: replayed" in shown.output, shown.output
    assert await client.result(job_id, timeout=20) == f"{namespace}-a"
    assert await redis.zscore(named, job_id) is None  # not left behind in its named DLQ
    view = (await api.get(f"/api/jobs/{job_id}")).json()
    assert view["state"] == "succeeded" and view["error"] is None  # the old error is in its attempts only
    assert (await api.get("/api/dlq?name=pol-dead")).json()["total"] == 0


async def test_bad_states_exit_2(redis_url: str, namespace: str) -> None:
    for argv in (("runs", "--state", "bogus"), ("jobs", "list", "--state", "bogus")):
        result = await tqc(redis_url, namespace, *argv)
        assert result.exit_code == exit_codes.USAGE, (argv, result.output)
        assert "bogus" in result.output


async def test_cancel_a_run_prints_its_new_state(client: Client, redis_url: str, namespace: str) -> None:
    await client.deploy(watch_plan())
    run_id = await client.start_run("watch", {"ms": 10})  # no worker: every job is queued or waiting
    result = await tqc(redis_url, namespace, "cancel", run_id)
    assert result.exit_code == 0 and result.output.strip() == f"run {run_id}: cancelled", result.output
    again = await tqc(redis_url, namespace, "cancel", run_id)
    assert again.output.strip() == f"run {run_id}: cancelled"


async def test_cancel_a_run_with_a_running_job_says_cancelling(
    client: Client, redis_url: str, namespace: str, start_worker: WorkerFactory, obs_tasks: Any
) -> None:
    await client.deploy(watch_plan())
    run_id = await client.start_run("watch", {"ms": 5000})
    await start_worker(obs_tasks, queues=["observe"])

    async def running() -> bool:
        return (await client.job(f"{run_id}.first")).state == "running"

    await until(running)
    result = await tqc(redis_url, namespace, "cancel", run_id)
    assert result.output.strip() == f"run {run_id}: cancelling", result.output
    assert (await client.wait(run_id, 20)).state == "cancelled"


async def test_jobs_show_json_is_the_api_schema(
    client: Client, redis_url: str, namespace: str, api: httpx.AsyncClient
) -> None:
    job_id = await client.enqueue("pol.flaky", key="k", queue="idle", delay=60)
    shown = await tqc(redis_url, namespace, "jobs", "show", job_id, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == (await api.get(f"/api/jobs/{job_id}")).json()
    missing = await tqc(redis_url, namespace, "jobs", "show", "nope", "--json")
    assert missing.exit_code == exit_codes.NOT_FOUND


async def test_a_class_parameter_takes_json_text_checked_at_submit(
    client: Client, redis_url: str, namespace: str, start_worker: WorkerFactory
) -> None:
    result = compile_file(OBS_FLOWS / "typed.tqflow")
    assert result.plan is not None, [d.message for d in result.diagnostics]
    await client.deploy(result.plan)
    with pytest.raises(ParamError, match="point"):
        await client.start_run("typed", {"point": '{"x": 2,'})  # malformed: refused at submit
    await start_worker(TASKS, queues=["pol"])
    run_id = await client.start_run("typed", {"point": '{"x": 2, "y": 3}'})  # as `--param point=…` gives it
    info = await client.wait(run_id, 20)
    assert info.state == "succeeded" and info.outputs == {"total": 6}
