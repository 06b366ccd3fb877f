"""`tqc runs`, `tqc status`, `tqc queues` (tables and --json) and `tqc run`'s live progress."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from click.testing import CliRunner, Result
from redis.asyncio import Redis

from tqflow.cli import exit_codes
from tqflow.cli.tqc import cli
from tqflow.runtime.attempts import AttemptRecorder
from tqflow.runtime.client import Client
from tqflow.runtime.task import Task

from .conftest import WATCH, watch_plan
from cli_runner import tqc as run_tqc
from helpers import WorkerFactory


async def tqc(redis_url: str, namespace: str, *args: str) -> Result:
    runner = CliRunner()
    argv = [*args, "--redis", redis_url, "--namespace", namespace]
    # The commands call asyncio.run themselves: run them off this test's event loop.
    return await asyncio.to_thread(runner.invoke, cli, argv, catch_exceptions=False)


async def test_runs_status_and_queues(
    client: Client,
    redis: Redis,
    redis_url: str,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    await client.deploy(watch_plan())
    good = await client.start_run("watch", {"ms": "5"})
    await asyncio.sleep(0.01)  # runs are listed by creation time in ms: keep the two apart
    bad = await client.start_run("broken")
    waiting = await tqc(redis_url, namespace, "queues", "--json")
    levels = json.loads(waiting.output)["queues"][0]["levels"]
    assert [(lv["priority"], lv["waiting"]) for lv in levels if lv["waiting"]] == [("normal", 2)]
    table = await tqc(redis_url, namespace, "queues")
    assert "observe" in table.output and "normal" in table.output

    recorder = AttemptRecorder(redis, namespace)
    await start_worker(obs_tasks, hooks=[recorder], queues=["observe"])
    await client.wait(good, 20)
    await client.wait(bad, 20)
    await recorder.flush()

    listed = json.loads((await tqc(redis_url, namespace, "runs", "--json")).output)
    assert [r["id"] for r in listed["items"]] == [bad, good]
    failed_only = await tqc(redis_url, namespace, "runs", "--state", "failed", "--json")
    assert [r["id"] for r in json.loads(failed_only.output)["items"]] == [bad]
    assert good in (await tqc(redis_url, namespace, "runs")).output

    shown = await tqc(redis_url, namespace, "status", good)
    assert shown.exit_code == exit_codes.OK
    assert "first  ─▶  left, right  ─▶  joined" in shown.output and "succeeded" in shown.output
    failed = await tqc(redis_url, namespace, "status", bad)
    assert failed.exit_code == exit_codes.RUN_FAILED and "RuntimeError: it broke" in failed.output
    as_json = json.loads((await tqc(redis_url, namespace, "status", bad, "--json")).output)
    assert [a["outcome"] for a in as_json["jobs"][0]["attempts"]] == ["retry", "dead"]
    missing = await tqc(redis_url, namespace, "status", "nope")
    assert missing.exit_code == exit_codes.NOT_FOUND and "no run nope" in missing.output


def test_tqc_run_shows_live_progress(redis_url: str, namespace: str) -> None:
    env = {"TQFLOW_REDIS_URL": redis_url, "TQFLOW_NAMESPACE": namespace}
    proc = run_tqc("run", str(WATCH), "--flow", "watch", "--param", "ms=250", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert (
        "jobs 0/4 done, 1 running, 0 failed" in lines
        or "jobs 0/4 done, 0 running, 0 failed, 1 queued" in lines
    )
    assert lines[-1] == "jobs 4/4 done, 0 running, 0 failed"
    assert "output total = 500" in proc.stdout
