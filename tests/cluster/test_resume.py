"""Resuming a run that did not succeed: `tqc resume`, `POST /api/runs/{id}/resume`, `Client.resume`, and a
DLQ replay of a run's job, against a real Redis with a real worker."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from cluster_helpers import FLOWS

from tqflow.compiler import compile_file
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.resume import ResumeError
from tqflow.runtime.task import Task

from cli_runner import tqc_on
from helpers import WorkerFactory


@pytest.fixture
def squares() -> tuple[ModuleType, dict[str, Task[Any, Any]]]:
    tasks = load_tasks(["resume_tasks"], [FLOWS])
    module = sys.modules["resume_tasks"]
    module.broken.clear()
    module.calls.clear()
    return module, tasks


async def deploy(client: Client) -> None:
    result = compile_file(FLOWS / "resume.tqflow")
    assert result.plan is not None, [d.message for d in result.diagnostics]
    await client.deploy(result.plan)


async def test_a_run_that_failed_mid_fan_out_resumes_without_rerunning_what_succeeded(
    client: Client, start_worker: WorkerFactory, squares: tuple[ModuleType, dict[str, Task[Any, Any]]]
) -> None:
    module, tasks = squares
    await deploy(client)
    await start_worker(tasks)
    module.broken.add("2")
    run_id = await client.start_run("squares")
    failed = await client.wait(run_id, 30)
    assert failed.state == "failed"
    assert failed.jobs["sq"].state == "dead" and failed.jobs["sum"].state == "skipped"
    module.broken.clear()
    module.calls.clear()
    resumed = await client.resume(run_id)
    assert resumed.rerun == 2  # the fan-out (its failed item only) and the skipped fan-in
    done = await client.wait(run_id, 30)
    assert done.state == "succeeded", done.jobs
    assert done.outputs == {"total": 0 + 1 + 4 + 9}
    assert sorted(module.calls) == ["square:2", "total"]  # items 0, 1, 3 and `gen` kept their results
    # Resuming a run that succeeded re-runs nothing; --from re-runs the job and all downstream of it.
    assert (await client.resume(run_id)).rerun == 0
    module.calls.clear()
    assert (await client.resume(run_id, from_job="gen")).rerun == 3
    assert (await client.wait(run_id, 30)).state == "succeeded"
    assert sorted(module.calls) == ["items", "square:0", "square:1", "square:2", "square:3", "total"]
    with pytest.raises(ResumeError, match="no job `nope`"):
        await client.resume(run_id, from_job="nope")


async def test_a_running_run_cannot_be_resumed(client: Client) -> None:
    await deploy(client)
    run_id = await client.start_run("squares")  # no worker: it stays running
    with pytest.raises(ResumeError, match="has not ended"):
        await client.resume(run_id)
    with pytest.raises(LookupError):
        await client.resume("nosuchrun")


async def test_a_dlq_replay_of_a_runs_job_resumes_its_run(
    client: Client, start_worker: WorkerFactory, squares: tuple[ModuleType, dict[str, Task[Any, Any]]]
) -> None:
    module, tasks = squares
    await deploy(client)
    await start_worker(tasks)
    module.broken.add("total")
    run_id = await client.start_run("squares", {"n": 2})
    assert (await client.wait(run_id, 30)).state == "failed"
    dead = [d.id for d in await client.dead_letters()]
    assert f"{run_id}.sum" in dead
    module.broken.clear()
    assert await client.replay([f"{run_id}.sum"]) == {f"{run_id}.sum": "resumed"}
    info = await client.wait(run_id, 30)
    assert info.state == "succeeded" and info.outputs == {"total": 1}
    assert f"{run_id}.sum" not in [d.id for d in await client.dead_letters()]


async def test_resume_from_the_cli_and_the_api(
    client: Client,
    redis_url: str,
    namespace: str,
    start_worker: WorkerFactory,
    squares: tuple[ModuleType, dict[str, Task[Any, Any]]],
) -> None:
    module, tasks = squares
    await deploy(client)
    await start_worker(tasks)
    module.broken.add("total")
    run_id = await client.start_run("squares", {"n": 3})
    assert (await client.wait(run_id, 30)).state == "failed"
    module.broken.clear()
    cli = await asyncio.to_thread(tqc_on, redis_url, namespace, "resume", run_id, "--wait", "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["outputs"] == {"total": 5}
    status = await asyncio.to_thread(tqc_on, redis_url, namespace, "status", run_id, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["outputs"] == {"total": 5}
    table = await asyncio.to_thread(tqc_on, redis_url, namespace, "status", run_id)
    assert "output total = 5" in table.stdout
    module.broken.add("total")
    app = create_app(ApiSettings(redis_url=redis_url, namespace=namespace))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        assert (await http.get(f"/api/runs/{run_id}")).json()["outputs"] == {"total": 5}
        again = await http.post(f"/api/runs/{run_id}/resume", json={"from": "sum"})
        assert again.status_code == 200 and again.json() == {"id": run_id, "rerun": 1}
        busy = await http.post(f"/api/runs/{run_id}/resume")
        assert busy.status_code in (200, 409)  # 409 while the re-run is in progress
        assert (await client.wait(run_id, 30)).state == "failed"  # total is broken again
        assert (await http.post("/api/runs/nosuchrun/resume")).status_code == 404
        assert (await http.post(f"/api/runs/{run_id}/resume", json={"from": "x"})).status_code == 422


async def test_deploy_says_what_happens_to_runs_that_have_not_reached_a_changed_job(
    client: Client, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    await deploy(client)
    run_id = await client.start_run("squares")  # no worker: nothing has started
    shutil.copy(FLOWS / "resume_tasks.py", tmp_path)
    changed = (
        (FLOWS / "resume.tqflow")
        .read_text()
        .replace(
            "job sum = r.total(values=sq.out)", "job sum = r.total(values=sq.out) {\n    priority high\n  }"
        )
    )
    (tmp_path / "resume.tqflow").write_text(changed)
    shown = await asyncio.to_thread(
        tqc_on, redis_url, namespace, "deploy", str(tmp_path / "resume.tqflow"), stdin="n\n"
    )
    assert "~ sum: priority" in shown.stdout, shown.stdout + shown.stderr
    assert f"! run {run_id} has not reached sum: it keeps version 1" in shown.stdout
