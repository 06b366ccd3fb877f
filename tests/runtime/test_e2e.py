"""Flows run end to end against a real Redis with in-process workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys

from helpers import FLOWS, WorkerFactory, plan_of, sample_tasks

ROOT = Path(__file__).parents[2]


async def test_diamond_runs_in_dependency_order(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    _, tasks = sample_tasks()
    await client.deploy(plan_of("diamond.tqflow"))
    await start_worker(tasks, concurrency=4)
    run_id = await client.start_run("diamond", {"n": "5"})
    info = await client.wait(run_id, timeout=20)
    assert info.state == "succeeded", info
    assert {name: job.state for name, job in info.jobs.items()} == dict.fromkeys(
        ["src", "sum", "twice", "joined"], "succeeded"
    )
    assert info.outputs == {"result": {"a": 10, "b": 20}, "b": 20}
    # The order as Redis recorded it: every job started after each job it waits for finished.
    keys = Keys(client.keys.namespace)
    times = {}
    for name in info.jobs:
        started, finished = await redis.hmget(keys.job(f"{run_id}.{name}"), "started", "finished")
        times[name] = (int(started), int(finished))
    for upstream, downstream in [("src", "sum"), ("src", "twice"), ("sum", "joined"), ("twice", "joined")]:
        assert times[downstream][0] >= times[upstream][1], (upstream, downstream, times)


async def test_a_retried_job_succeeds_on_its_second_attempt(
    client: Client, start_worker: WorkerFactory
) -> None:
    module, tasks = sample_tasks()
    await client.deploy(plan_of("retries.tqflow"))
    await start_worker(tasks)
    run_id_key = f"retry-once-{client.keys.namespace}"
    run_id = await client.start_run("retries", {"key": run_id_key})
    info = await client.wait(run_id, timeout=20)
    assert info.state == "succeeded"
    assert info.jobs["first"].attempt == 2
    assert info.jobs["second"].result == run_id_key
    assert module.failures[run_id_key] == 2


async def test_failure_dead_letters_and_propagates_by_conditions(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    _, tasks = sample_tasks()
    await client.deploy(plan_of("failing.tqflow"))
    await start_worker(tasks)
    run_id = await client.start_run("failing")
    info = await client.wait(run_id, timeout=20)
    assert info.state == "failed"
    states = {name: job.state for name, job in info.jobs.items()}
    assert states == {
        "bad": "dead",
        "after_it": "skipped",
        "later": "skipped",
        "cleanup": "succeeded",
        "always": "succeeded",
    }
    assert info.jobs["bad"].attempt == 2
    assert info.jobs["bad"].error is not None
    assert info.jobs["bad"].error["type"] == "ValueError"
    assert "it broke" in info.jobs["bad"].error["traceback"]
    assert await redis.zscore(client.keys.dlq, f"{run_id}.bad") is not None


async def test_stale_attempt_cannot_complete(client: Client, redis: Redis) -> None:
    """Fencing: finishing with a token that is not the current attempt's changes nothing."""
    await client.deploy(plan_of("diamond.tqflow"))
    run_id = await client.start_run("diamond")
    job_id = f"{run_id}.src"
    stream = client.keys.stream("default", 2)
    await redis.xgroup_create(stream, client.keys.group, id="0", mkstream=True)
    [[_, [(entry_id, _)]]] = await redis.xreadgroup(client.keys.group, "w1", {stream: ">"}, count=1)
    started = await client.scripts.run(
        calls.start_many(client.keys, 1, "w1", "tok-", 1000, [(job_id, stream, entry_id)])
    )
    assert started and started[0][0] == job_id
    [result] = await client.scripts.run(
        calls.finish_many(client.keys, 2, 0, [[job_id, "tok-OTHER", "succeeded", "J-|1", 0, ""]])
    )
    assert result == "stale"
    assert await redis.hget(client.keys.job(job_id), "state") == "running"
    assert await redis.hget(client.keys.job(f"{run_id}.sum"), "state") == "waiting"


def test_tqc_check_reports_a_cycle_and_exits_non_zero() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tqflow.cli.tqc", "check", str(FLOWS / "cycle.tqflow")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "error[TQ0401]: dependency cycle in flow `loop`: a -> b -> c -> a" in proc.stderr
    assert "cycle.tqflow:4:7" in proc.stderr


def test_tqc_run_hello_prints_the_result(redis_url: str, namespace: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tqflow.cli.tqc",
            "run",
            str(ROOT / "examples/hello/hello.tqflow"),
            "--param",
            "name=tests",
            "--redis",
            redis_url,
            "--namespace",
            namespace,
            "--timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'output message = "HELLO, TESTS!"' in proc.stdout
    assert "echoed    ok after 2 attempts" in proc.stdout
