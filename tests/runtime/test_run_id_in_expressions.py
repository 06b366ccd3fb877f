"""`run.id` in a flow's expressions is the id callers know: `pK:RUN` in a namespace of several partitions
(a task handed it can look its own run up), the plain id in a namespace of one; for a run started by a
caller, by an event, and in the run's outputs. Against a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tqflow.compiler import compile_source
from tqflow.dsl.source import Source
from tqflow.plan import Plan
from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.task import Task
from tqflow.runtime.worker import Worker, WorkerSettings

TASKS = "from tqflow.runtime import task\n\n\n@task\ndef echo(text: str) -> str:\n    return text\n"
FLOW = """use runids as r

flow whoami {
  schedule event "who"
  job me = r.echo(text=run.id)
  output id = run.id
}
"""


def compiled(tmp_path: Path) -> tuple[Plan, dict[str, Task[Any, Any]]]:
    (tmp_path / "runids.py").write_text(TASKS)
    result = compile_source(Source(str(tmp_path / "whoami.tqflow"), FLOW))
    assert result.plan is not None, [d.message for d in result.diagnostics]
    return result.plan, load_tasks(["runids"], [tmp_path])


@contextlib.asynccontextmanager
async def running_worker(url: str, namespace: str, tasks: dict[str, Task[Any, Any]]) -> AsyncIterator[None]:
    redis = connect(url)
    worker = Worker(redis, tasks, namespace, WorkerSettings(block_ms=100))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
        await redis.aclose()


@pytest.mark.parametrize("partitions", [1, 3])
async def test_run_id_is_the_callers_id(
    redis_url: str, namespace: str, tmp_path: Path, partitions: int
) -> None:
    plan, tasks = compiled(tmp_path)
    client = Client.from_url(redis_url, f"{namespace}-{partitions}")
    try:
        if partitions > 1:
            await client.create_partitions(partitions)
        await client.deploy(plan)
        async with running_worker(redis_url, f"{namespace}-{partitions}", tasks):
            started = await client.start_run("whoami")
            [emitted] = await client.emit("who", {})
            for run_id in (started, emitted.run_id):
                assert run_id.startswith("p") == (partitions > 1), run_id
                info = await client.wait(run_id, timeout=30)
                assert info.state == "succeeded", info
                assert info.jobs["me"].result == run_id  # the task can look its run up by it
                assert info.outputs == {"id": run_id}
                assert (await client.run_info(info.jobs["me"].result)).state == "succeeded"
    finally:
        await client.close()
