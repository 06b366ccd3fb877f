"""Signals, `tqc start` and `tqc resume` with real `tqrun worker` processes: a waiting signal job lives in
Redis, so a payload sent while no worker runs (the worker was killed) is not lost, and the next worker
process carries the run on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tqflow.runtime.client import Client

from cli_runner import tqc_on

EXAMPLE = Path(__file__).parents[2] / "examples" / "approval"
YES = json.dumps({"approved": True, "by": "ana"})


@pytest.fixture
def workers(redis_url: str, namespace: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def start_worker(procs: list[subprocess.Popen[bytes]], redis_url: str, namespace: str, flow: Path) -> None:
    env = {**os.environ, "TQFLOW_REDIS_URL": redis_url, "TQFLOW_NAMESPACE": namespace}
    command = [sys.executable, "-m", "tqflow.cli.tqrun", "worker", str(flow), "--grace", "1"]
    procs.append(subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL))


async def until_state(redis: Redis, client: Client, job_id: str, wanted: str, seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.05)):
        if await redis.hget(client.keys.job(job_id), "state") == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{job_id} is {await redis.hget(client.keys.job(job_id), 'state')}, not {wanted}")


async def test_a_signal_sent_while_no_worker_runs_is_not_lost(
    client: Client,
    redis: Redis,
    redis_url: str,
    namespace: str,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    flow = EXAMPLE / "approval.tqflow"
    deployed = await asyncio.to_thread(tqc_on, redis_url, namespace, "deploy", str(flow), "--yes")
    assert deployed.returncode == 0, deployed.stderr
    start_worker(workers, redis_url, namespace, flow)
    started = await asyncio.to_thread(
        tqc_on, redis_url, namespace, "start", "expense", "--param", "claim=c-1"
    )
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    await until_state(redis, client, f"{run_id}.approve", "awaiting")
    workers[0].send_signal(signal.SIGKILL)  # no goodbye: the worker is simply gone
    await asyncio.to_thread(workers[0].wait, 10)
    sent = await asyncio.to_thread(tqc_on, redis_url, namespace, "signal", run_id, "approve", "--data", YES)
    assert sent.returncode == 0, sent.stderr
    await until_state(redis, client, f"{run_id}.pay", "queued")  # waits for a worker, in Redis
    start_worker(workers, redis_url, namespace, flow)
    info = await client.wait(run_id, 60)
    assert info.state == "succeeded", info.jobs
    assert info.jobs["pay"].result == "paid 120 EUR for c-1, approved by ana"


async def test_start_cancel_resume_and_signal_from_the_command_line_with_a_worker_process(
    client: Client,
    redis: Redis,
    redis_url: str,
    namespace: str,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    flow = EXAMPLE / "approval.tqflow"
    assert (
        await asyncio.to_thread(tqc_on, redis_url, namespace, "deploy", str(flow), "--yes")
    ).returncode == 0
    start_worker(workers, redis_url, namespace, flow)
    started = await asyncio.to_thread(tqc_on, redis_url, namespace, "start", "expense", "--json")
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["id"]
    await until_state(redis, client, f"{run_id}.approve", "awaiting")
    cancelled = await asyncio.to_thread(tqc_on, redis_url, namespace, "cancel", run_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert (await client.wait(run_id, 30)).state == "cancelled"
    resumed = await asyncio.to_thread(tqc_on, redis_url, namespace, "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == f"run {run_id}: 4 job(s) run again"  # review had succeeded: kept
    await until_state(redis, client, f"{run_id}.approve", "awaiting")
    sent = await asyncio.to_thread(tqc_on, redis_url, namespace, "signal", run_id, "approve", "--data", YES)
    assert sent.returncode == 0 and "delivered" in sent.stdout, sent.stderr
    assert (await client.wait(run_id, 60)).state == "succeeded"
    status = await asyncio.to_thread(tqc_on, redis_url, namespace, "status", run_id, "--json")
    shown = json.loads(status.stdout)
    assert shown["outputs"] == {"approved": True, "by": "ana"}
    review = next(j for j in shown["jobs"] if j["name"] == "review")
    assert review["attempt"] == 1 and review["state"] == "succeeded"  # kept, not run again
