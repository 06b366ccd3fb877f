"""One namespace over the shards of a 3-master cluster (runtime/partitions.py): standalone jobs spread
over its partitions, whose keys land on different masters, and workers run the jobs of every partition."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.crc import key_slot

from tqflow.plan import RetryPlan
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.jobs import JobCancelled, JobFailed, Unique
from tqflow.runtime.partitions import PartitionError
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.servers import LocalCluster
from tqflow.runtime.worker import Worker, WorkerSettings

from helpers import FLOWS

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above

PARTITIONS = 3


async def open_api(url: str, namespace: str) -> tuple[httpx.AsyncClient, Any]:
    app = create_app(ApiSettings(url, namespace))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"), app


def spread_namespace(cluster: LocalCluster) -> str:
    """A namespace whose 3 partitions are on 3 different masters (where a partition goes is its tag's
    hash: with as many partitions as masters, some names put two on one master; a real deployment takes
    more partitions than shards)."""
    while True:
        namespace = f"part-{uuid.uuid4().hex[:8]}"
        owners = {cluster.owner(key_slot(f"{{{namespace}.{k}}}".encode())).port for k in range(PARTITIONS)}
        if len(owners) == PARTITIONS:
            return namespace


@contextlib.asynccontextmanager
async def running_worker(url: str, namespace: str, concurrency: int = 10) -> AsyncIterator[Worker]:
    redis = connect(url)
    worker = Worker(redis, TASKS, namespace, WorkerSettings(block_ms=100, concurrency=concurrency))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
        await redis.aclose()


async def test_standalone_jobs_spread_over_partitions_on_three_masters(cluster3: LocalCluster) -> None:
    namespace = spread_namespace(cluster3)
    client = Client.from_url(cluster3.url, namespace)
    try:
        assert await client.create_partitions(PARTITIONS) == PARTITIONS
        async with running_worker(cluster3.url, namespace) as worker:
            ids = [await client.enqueue(jt.add, x=i, y=1) for i in range(30)]
            bulk = await client.enqueue_many([jt.add.call(x=i, y=2) for i in range(30)], atomic=False)
            assert [await client.result(i, timeout=30) for i in ids] == [i + 1 for i in range(30)]
            assert [await client.result(i, timeout=30) for i in bulk] == [i + 2 for i in range(30)]
            assert len(worker.partition_workers) == PARTITIONS
        # one producer's jobs go round robin: 10 one by one and 10 of the bulk call in each partition
        assert Counter(i.split(":", 1)[0] for i in ids) == {f"p{k}": 10 for k in range(PARTITIONS)}
        assert Counter(i.split(":", 1)[0] for i in bulk) == {f"p{k}": 10 for k in range(PARTITIONS)}
        info = await client.job(ids[0])
        assert info.id == ids[0] and info.state == "succeeded"
        # each partition's keys are on its own master, and no master holds another partition's keys
        seen: dict[int, set[str]] = {}
        for k in range(PARTITIONS):
            node = cluster3.owner(key_slot(f"{{{namespace}.{k}}}".encode()))
            with node.client() as direct:
                tags = {str(key).split("}")[0] + "}" for key in direct.scan_iter(match=f"{{{namespace}.*")}
            seen[node.port] = tags
            assert tags == {f"{{{namespace}.{k}}}"}, tags
        assert len(seen) == PARTITIONS
    finally:
        await client.close()


async def test_unique_keys_cancels_and_dependencies_in_a_partitioned_namespace(
    cluster3: LocalCluster,
) -> None:
    namespace = f"part-{uuid.uuid4().hex[:8]}"
    client = Client.from_url(cluster3.url, namespace)
    try:
        await client.create_partitions(PARTITIONS)
        with pytest.raises(PartitionError, match="has 3 partitions; the count is fixed"):
            await client.create_partitions(4)
        assert await client.partition_count() == PARTITIONS
        async with running_worker(cluster3.url, namespace):
            # a unique key has one partition, the same for every producer: the second job is the first
            key = "order-42"
            first = await client.enqueue(jt.sleeper, seconds=0.5, unique=Unique(key, within="1m"))
            other = Client.from_url(cluster3.url, namespace)
            try:
                again = await other.enqueue(jt.sleeper, seconds=0.5, unique=Unique(key, within="1m"))
            finally:
                await other.close()
            assert again == first and first.startswith(f"p{zlib.crc32(key.encode()) % PARTITIONS}:")
            assert await client.result(first, timeout=30) == "woke"

            # a dependent goes to its dependency's partition and waits for it
            base = await client.enqueue(jt.sleeper, seconds=0.3)
            after = await client.enqueue(jt.add, x=1, y=1, depends_on=[base])
            assert after.split(":")[0] == base.split(":")[0]
            assert await client.result(after, timeout=30) == 2
            elsewhere = next(
                i for i in [await client.enqueue(jt.add, x=0, y=0) for _ in range(3)]
                if i.split(":")[0] != base.split(":")[0]
            )  # fmt: skip
            with pytest.raises(PartitionError, match="must be in one partition"):
                await client.enqueue(jt.add, x=1, y=1, depends_on=[base, elsewhere])

            # a running job of a data partition is cancelled through its partition's channel
            long = await client.enqueue(jt.sleeper, seconds=60)
            while (await client.job(long)).state != "running":
                await asyncio.sleep(0.05)
            assert await client.cancel(long) == "cancelling"
            with pytest.raises(JobCancelled):
                await client.result(long, timeout=30)
    finally:
        await client.close()


def tqc(url: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{FLOWS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "tqflow.cli.tqc", *args, "--redis", url, "--namespace", namespace],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def test_inspection_gathers_over_every_partition(cluster3: LocalCluster) -> None:
    """`tqc jobs list`, `tqc dlq list`, `GET /api/jobs`, `/api/queues`, `/api/stats`, `/api/dlq` and the
    Python API see the jobs of every partition, under the ids their producer got."""
    namespace = spread_namespace(cluster3)
    made = await asyncio.to_thread(tqc, cluster3.url, namespace, "partitions", "--create", "3", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["tags"] == [f"{{{namespace}.{k}}}" for k in range(PARTITIONS)]
    refused = await asyncio.to_thread(tqc, cluster3.url, namespace, "partitions", "--create", "2")
    assert refused.returncode == 2 and "has 3 partitions; the count is fixed" in refused.stderr
    client = Client.from_url(cluster3.url, namespace)
    http, app = await open_api(cluster3.url, namespace)
    try:
        queued = {await client.enqueue(jt.add, x=i, y=i) for i in range(9)}  # no worker yet: they wait
        assert {i.split(":")[0] for i in queued} == {"p0", "p1", "p2"}
        assert {j.id for j in await client.list_jobs(state="queued")} == queued
        listed = await asyncio.to_thread(
            tqc, cluster3.url, namespace, "jobs", "list", "--state", "queued", "--json"
        )
        assert listed.returncode == 0, listed.stderr
        assert {j["id"] for j in json.loads(listed.stdout)} == queued
        page = (await http.get("/api/jobs", params={"state": "queued", "limit": 50})).json()
        assert {j["id"] for j in page["items"]} == queued
        one = sorted(queued)[0]
        assert (await http.get(f"/api/jobs/{one}")).json()["state"] == "queued"
        queues = (await http.get("/api/queues")).json()
        assert [(q["queue"], q["waiting"]) for q in queues["queues"]] == [("default", 9)]
        assert (await http.get("/api/stats")).json()["queues"]["queues"][0]["waiting"] == 9
        assert (await http.get("/api/partitions")).json()["partitions"] == PARTITIONS

        failing = [
            await client.enqueue(jt.always_fails, message=f"no {i}", retry=RetryPlan(attempts=1))
            for i in range(3)
        ]
        async with running_worker(cluster3.url, namespace):
            assert sorted([await client.result(i, timeout=30) for i in queued]) == sorted(
                2 * i for i in range(9)
            )
            for job in failing:
                with pytest.raises(JobFailed):
                    await client.result(job, timeout=30)
        dead = {j.id for j in await client.dead_letters()}
        assert dead == set(failing) and {i.split(":")[0] for i in dead} == {"p0", "p1", "p2"}
        dlq = (await http.get("/api/dlq")).json()
        assert {d["job"]["id"] for d in dlq["items"]} == set(failing) and dlq["total"] == 3
        times = [d["dead_at"] for d in dlq["items"]]
        assert times == sorted(times, reverse=True)  # newest first over the partitions
        shown = await asyncio.to_thread(tqc, cluster3.url, namespace, "dlq", "list", "--json")
        assert shown.returncode == 0, shown.stderr
        assert {j["id"] for j in json.loads(shown.stdout)} == set(failing)
        replayed = await client.replay([failing[0]])
        assert replayed == {failing[0]: "replayed"}
        assert await client.purge_dead_letters() == 2
        assert (await http.get("/api/queues")).json()["dead"] == 0
    finally:
        await http.aclose()
        await app.state.services.close()
        await client.close()
