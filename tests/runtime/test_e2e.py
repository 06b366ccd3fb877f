"""Flows run end to end against a real Redis with in-process workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.jobs import JobFailed
from tqflow.runtime.policies import NO_RETRY
from tqflow.runtime.runs import JobInfo, RunInfo
from tqflow.runtime.store import calls
from tqflow.testing import FlowTestEnv, assert_run

from helpers import FLOWS, plan_of, sample_tasks

ROOT = Path(__file__).parents[2]


async def test_diamond_runs_in_dependency_order(tqflow: FlowTestEnv) -> None:
    """Through the testing kit (tqflow.testing): compile, deploy, an in-process worker, one run."""
    info = await tqflow.run_flow(FLOWS / "diamond.tqflow", params={"n": "5"}, concurrency=4)
    assert_run(
        info,
        jobs=dict.fromkeys(["src", "sum", "twice", "joined"], "succeeded"),
        outputs={"result": {"a": 10, "b": 20}, "b": 20},
    )
    # The order as Redis recorded it: every job started after each job it waits for finished.
    keys = tqflow.client.keys
    times = {}
    for name in info.jobs:
        started, finished = await tqflow.redis.hmget(keys.job(f"{info.id}.{name}"), "started", "finished")
        times[name] = (int(started), int(finished))
    for upstream, downstream in [("src", "sum"), ("src", "twice"), ("sum", "joined"), ("twice", "joined")]:
        assert times[downstream][0] >= times[upstream][1], (upstream, downstream, times)


async def test_a_retried_job_succeeds_on_its_second_attempt(tqflow: FlowTestEnv) -> None:
    module, _ = sample_tasks()
    key = f"retry-once-{tqflow.namespace}"
    info = await tqflow.run_flow(FLOWS / "retries.tqflow", params={"key": key})
    assert_run(info, jobs={"first": "succeeded", "second": "succeeded"})
    assert info.jobs["first"].attempt == 2
    assert info.jobs["second"].result == key
    assert module.failures[key] == 2


async def test_failure_dead_letters_and_propagates_by_conditions(tqflow: FlowTestEnv) -> None:
    info = await tqflow.run_flow(FLOWS / "failing.tqflow")
    assert_run(
        info,
        "failed",
        jobs={
            "bad": "dead",
            "after_it": "skipped",
            "later": "skipped",
            "cleanup": "succeeded",
            "always": "succeeded",
        },
    )
    assert info.jobs["bad"].attempt == 2
    assert info.jobs["bad"].error is not None
    assert info.jobs["bad"].error["type"] == "ValueError"
    assert "it broke" in info.jobs["bad"].error["traceback"]
    assert await tqflow.redis.zscore(tqflow.client.keys.dlq, f"{info.id}.bad") is not None


async def test_a_job_through_the_kit(tqflow: FlowTestEnv) -> None:
    _, tasks = sample_tasks()
    await tqflow.start_worker(tasks)
    assert await tqflow.run_job(tasks["sample_tasks.source"], n=3) == [0, 1, 2]
    with pytest.raises(JobFailed, match="it broke"):
        await tqflow.run_job(tasks["sample_tasks.boom"], message="it broke", retry=NO_RETRY)


def test_assert_run_says_what_went_wrong() -> None:
    failed = RunInfo("r1", "f", 1, "failed", {}, {"a": JobInfo("a", "dead", 1, error={"type": "ValueError"})})
    with pytest.raises(AssertionError, match=r"expected the run to be succeeded: run r1 of f: failed; jobs"):
        assert_run(failed)
    with pytest.raises(AssertionError, match=r"jobs not in the expected state .*'a': 'dead'"):
        assert_run(failed, "failed", jobs={"a": "succeeded"})


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
