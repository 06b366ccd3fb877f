"""Versioned deploys: the diff shown first, confirmation, rollback, runs keeping their version, and
`tqc workers`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

from cluster_helpers import FLOWS, nap_plan, nap_tasks
from redis.asyncio import Redis

from tqflow.plan import RetryPlan, TriggerPlan
from tqflow.runtime.client import Client
from tqflow.runtime.cluster.registry import list_workers
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store.cluster_keys import ClusterKeys

from cli_runner import Ran
from cli_runner import tqc as run_tqc
from helpers import WorkerFactory

CRON = TriggerPlan(name="cron:0", kind="cron", cron="30 2 * * *", timezone="Europe/Paris")


def tqc(redis_url: str, namespace: str, *args: str, stdin: str = "") -> Ran:
    """Through the environment variables, as a user who set them runs it."""
    return run_tqc(*args, stdin=stdin, env={"TQFLOW_REDIS_URL": redis_url, "TQFLOW_NAMESPACE": namespace})


async def test_preview_lists_jobs_edges_policies_and_next_fires(client: Client) -> None:
    first = nap_plan()
    await client.deploy(first)
    flow = first.flows["nap"]
    retried = flow.jobs["sleep"].model_copy(
        update={"retry": RetryPlan(kind="fixed", attempts=3, delay_ms=100)}
    )
    extra = retried.model_copy(update={"name": "again", "waits_for": ["sleep"], "data_deps": ["sleep"]})
    changed = flow.model_copy(
        update={"jobs": {"sleep": retried, "again": extra}, "order": ["sleep", "again"], "triggers": [CRON]}
    )
    (diff,) = await client.deployments.preview(first.model_copy(update={"flows": {"nap": changed}}), now_ms())
    assert diff.current == 1 and not diff.unchanged
    assert diff.jobs_added == ["again"] and diff.edges_added == [("sleep", "again")]
    assert any(c.startswith("retry:") for c in diff.changed["sleep"])
    assert diff.triggers_before == {}
    (fires,) = diff.triggers_after.values()
    assert len(fires) == 3 and all(f > now_ms() for f in fires)
    (same,) = await client.deployments.preview(first, now_ms())
    assert same.unchanged


async def test_runs_keep_their_version_and_rollback_returns_to_the_previous_one(
    client: Client, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    await client.deploy(nap_plan())
    run_v1 = await client.start_run("nap", {"key": "v1", "ms": "300"})
    await client.deploy(nap_plan(CRON))  # version 2 while the run is in progress
    await start_worker(tasks)
    info = await client.wait(run_v1, timeout=10)
    assert info.state == "succeeded" and info.version == 1
    assert (await client.flow("nap"))[0] == 2
    rolled = await client.deployments.rollback("nap")
    assert rolled.version == 1 and (await client.flow("nap"))[0] == 1
    assert await client.deployments.history("nap") == [1]
    run_again = await client.start_run("nap", {"key": "again"})
    assert (await client.wait(run_again, timeout=10)).version == 1


async def test_tqc_deploy_shows_the_diff_asks_and_rolls_back(
    redis_url: str, namespace: str, client: Client
) -> None:
    file = FLOWS / "nap.tqflow"
    declined = await asyncio.to_thread(tqc, redis_url, namespace, "deploy", str(file), stdin="n\n")
    assert "flow nap: new flow" in declined.stdout and "+ job sleep" in declined.stdout
    assert declined.returncode == 1 and await client.deployments.names() == []
    accepted = await asyncio.to_thread(tqc, redis_url, namespace, "deploy", str(file), "--yes")
    assert accepted.returncode == 0 and "deployed: flow nap version 1" in accepted.stdout
    again = await asyncio.to_thread(tqc, redis_url, namespace, "deploy", str(file))
    assert again.returncode == 0 and "nothing to deploy" in again.stdout
    await client.deploy(nap_plan(CRON))
    back = await asyncio.to_thread(tqc, redis_url, namespace, "deploy", "--rollback", "nap")
    assert back.returncode == 0 and "version 2 -> 1" in back.stdout, back.stderr
    none_left = await asyncio.to_thread(tqc, redis_url, namespace, "deploy", "--rollback", "nap")
    assert none_left.returncode == 5 and "no earlier version" in none_left.stderr


async def test_tqc_workers_lists_nodes_and_the_leader(
    redis_url: str, namespace: str, client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    worker = await start_worker(tasks)
    for _ in range(50):
        if worker.cluster.leader.is_leader():
            break
        await asyncio.sleep(0.05)
    listed = await asyncio.to_thread(tqc, redis_url, namespace, "workers")
    assert listed.returncode == 0, listed.stderr
    assert worker.settings.name in listed.stdout and "leader (epoch" in listed.stdout
    as_json = await asyncio.to_thread(tqc, redis_url, namespace, "workers", "--json")
    (record,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert record["leader"] and record["pid"] == os.getpid() and record["queues"] == ["default"]


async def test_a_running_worker_fires_the_newly_deployed_version(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    _, tasks = nap_tasks()
    await client.deploy(nap_plan())  # version 1: no schedule
    await start_worker(tasks)
    await asyncio.sleep(0.5)
    every = TriggerPlan(name="every:0", kind="every", every_ms=1000)
    await client.deploy(nap_plan(every))  # version 2, while the worker runs
    for _ in range(60):
        runs = await redis.zrange(client.keys.runs, 0, -1)
        if runs:
            break
        await asyncio.sleep(0.1)
    assert runs, "the new version's schedule never fired"
    info = await client.wait(runs[0], timeout=10)
    assert info.state == "succeeded" and info.version == 2


async def test_tqrun_worker_joins_with_its_node_name_and_leaves_on_sigterm(
    redis_url: str, namespace: str, client: Client, redis: Redis
) -> None:
    env = {**os.environ, "TQFLOW_REDIS_URL": redis_url, "TQFLOW_NAMESPACE": namespace}
    command = [sys.executable, "-m", "tqflow.cli.tqrun", "worker", str(FLOWS / "nap.tqflow")]
    proc = subprocess.Popen(
        [*command, "--node", "rack-7", "--grace", "1"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            listed = await list_workers(redis, ClusterKeys(client.keys))
            if listed:
                break
            await asyncio.sleep(0.05)
        assert [(w.node, w.pid) for w in listed] == [("rack-7", proc.pid)]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
        assert await list_workers(redis, ClusterKeys(client.keys)) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
