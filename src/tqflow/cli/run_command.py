"""`tqc run`: deploy a plan, start a worker in this process, run one flow once, print the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tqflow.cli import exit_codes
from tqflow.cli.progress import show_progress
from tqflow.plan import Plan
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.observability import for_worker
from tqflow.runtime.params import ParamError
from tqflow.runtime.registry import TaskLoadError, load_tasks
from tqflow.runtime.runs import RunInfo
from tqflow.runtime.subflows import with_subflows
from tqflow.runtime.worker import Worker, WorkerSettings

STATE_MARKS = {"succeeded": "ok", "dead": "FAILED", "skipped": "skipped", "cancelled": "cancelled"}


async def run_flow(
    file: Path,
    plan: Plan,
    flow_name: str | None,
    params: dict[str, str],
    timeout: float | None,
    concurrency: int,
    redis_url: str | None,
    namespace: str,
    open_client: Callable[..., Any],
) -> int:
    if flow_name is None:
        if len(plan.flows) != 1:
            click.echo(f"error: {file} has flows {', '.join(plan.flows)}; choose one with --flow", err=True)
            return exit_codes.USAGE
        flow_name = next(iter(plan.flows))
    if flow_name not in plan.flows:
        click.echo(f"error: {file} has no flow `{flow_name}` (it has {', '.join(plan.flows)})", err=True)
        return exit_codes.NOT_FOUND
    flows = with_subflows(plan, flow_name)  # the child flows its sub-flow jobs start run here too
    try:
        modules = sorted({m for f in flows for m in f.modules})
        tasks = load_tasks(modules, [file.resolve().parent])
    except TaskLoadError as err:
        click.echo(f"error: {err}", err=True)
        return exit_codes.IMPORT_ERROR
    async with open_client(redis_url, namespace, embedded_ok=True) as client:
        await client.deploy(plan)
        queues = sorted({job.queue for f in flows for job in f.jobs.values()} | {f.queue for f in flows})
        worker = Worker(
            client.redis,
            tasks,
            namespace,
            WorkerSettings(queues=queues, concurrency=concurrency),
            hooks=for_worker(client.redis, namespace, concurrency).hooks,
        )
        stop = asyncio.Event()
        worker_task = asyncio.create_task(worker.run(stop))
        try:
            try:
                run_id = await client.start_run(flow_name, params)
            except ParamError as err:
                click.echo(f"error: {err}", err=True)
                return exit_codes.USAGE
            click.echo(f"run {run_id} of flow {flow_name} started")
            info = await wait_with_progress(client, namespace, run_id, timeout)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
    print_run(info)
    if not info.finished:
        return exit_codes.TIMEOUT
    return exit_codes.OK if info.state == "succeeded" else exit_codes.RUN_FAILED


async def wait_with_progress(client: Any, namespace: str, run_id: str, timeout: float | None) -> RunInfo:
    """Wait for the run, showing jobs done/running/failed on stderr meanwhile."""
    done = asyncio.Event()
    shown = asyncio.create_task(show_progress(Inspector(client.redis, namespace), run_id, done, sys.stderr))
    try:
        info: RunInfo = await client.wait(run_id, timeout)
    finally:
        done.set()
        await asyncio.gather(shown, return_exceptions=True)
    return info


def print_run(info: RunInfo) -> None:
    width = max((len(n) for n in info.jobs), default=4)
    for name, job in info.jobs.items():
        mark = STATE_MARKS.get(job.state, job.state)
        detail = ""
        if job.state == "dead" and job.error:
            detail = f"  {job.error.get('type')}: {job.error.get('message')}"
        elif job.state == "skipped" and job.reason:
            detail = f"  ({job.reason})"
        elif job.state == "awaiting":
            detail = f"  (a signal: tqc signal {info.id} {name} --data JSON)"
        tries = f" after {job.attempt} attempts" if job.attempt > 1 else ""
        click.echo(f"  {name:<{width}}  {mark}{tries}{detail}")
    click.echo(f"run {info.id}: {info.state}")
    for name, value in info.outputs.items():
        click.echo(f"output {name} = {json.dumps(value)}")
    for name, error in info.output_errors.items():
        click.echo(f"output {name}: cannot evaluate: {error}")
