"""tqflow on a 3-master Redis Cluster, through nodes that do not own the namespace's slot."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from tqflow.runtime.client import Client
from tqflow.runtime.connection import ForeignSlotError, connect, topology_of
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.servers import HOST, LocalCluster
from tqflow.runtime.sync import SyncClient
from tqflow.runtime.worker import Worker, WorkerSettings

from cli_runner import tqc
from helpers import FLOWS

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above

ROOT = Path(__file__).parents[2]


def slot(namespace: str) -> int:
    return key_slot(f"{{{namespace}}}".encode())


def test_hello_runs_through_a_node_that_does_not_own_the_namespace(cluster3: LocalCluster) -> None:
    namespace = f"hello-{uuid.uuid4().hex[:8]}"
    other = cluster3.not_owner(slot(namespace))
    url = f"redis+cluster://{other.address}"
    done = tqc("run", str(ROOT / "examples/hello/hello.tqflow"), "--redis", url, "--namespace", namespace)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "succeeded" in done.stdout and 'message = "HELLO, WORLD!"' in done.stdout, done.stdout


def test_a_plain_url_into_the_cluster_is_refused_in_one_line(cluster3: LocalCluster) -> None:
    namespace = f"plain-{uuid.uuid4().hex[:8]}"
    owner, other = cluster3.owner(slot(namespace)), cluster3.not_owner(slot(namespace))
    done = tqc("runs", "--redis", f"redis://{other.address}", "--namespace", namespace)
    assert done.returncode == 4, (done.stdout, done.stderr)
    expected = (
        f"error: slot {slot(namespace)} of namespace {namespace} is on {owner.address}; "
        f"use redis+cluster://{other.address}"
    )
    assert done.stderr.strip() == expected


async def test_jobs_from_the_asyncio_and_the_sync_client(cluster3: LocalCluster) -> None:
    namespace = f"jobs-{uuid.uuid4().hex[:8]}"
    url = f"redis+cluster://{cluster3.not_owner(slot(namespace)).address}"
    async with running_worker(url, namespace):
        client = Client.from_url(url, namespace)
        try:
            ids = [await client.enqueue(jt.add, x=i, y=1) for i in range(10)]
            assert [await client.result(i, timeout=30) for i in ids] == [i + 1 for i in range(10)]
            topology = topology_of(client.redis)
            assert topology is not None and topology.current == (HOST, cluster3.owner(slot(namespace)).port)
        finally:
            await client.close()
        assert await asyncio.to_thread(sync_jobs, url, namespace) == [i + 2 for i in range(10)]


def sync_jobs(url: str, namespace: str) -> list[int]:
    """The sync client's native calls (in a thread: the worker runs on the test's event loop)."""
    with SyncClient.from_url(url, namespace) as sync:
        ids = sync.enqueue_many([(jt.add, {"x": i, "y": 2}) for i in range(10)])
        results = [sync.result(i, timeout=30) for i in ids]
        assert sync.job(ids[0]).state == "succeeded"
        return results


async def test_a_key_of_another_nodes_slot_fails_at_once(cluster3: LocalCluster) -> None:
    """A connection goes to its namespace's node only: a key elsewhere is a clear error, not a retry loop."""
    namespace = f"pin-{uuid.uuid4().hex[:8]}"
    redis = connect(cluster3.url, namespace=namespace)
    other = next(f"k{i}" for i in range(1000) if cluster3.owner(key_slot(f"k{i}".encode())).port
                 != cluster3.owner(slot(namespace)).port)  # fmt: skip
    try:
        started = time.monotonic()
        with pytest.raises(ForeignSlotError, match=f"this connection serves {namespace}"):
            await redis.get(other)
        assert time.monotonic() - started < 10
        assert await redis.set(f"{{{namespace}}}:x", "1")  # its own keys still work
    finally:
        await redis.aclose()


async def test_a_tls_cluster(tmp_path: Path) -> None:
    """rediss+cluster:// with a CA file: every node speaks TLS only (clients, the cluster bus)."""
    with LocalCluster(masters=3, tls=True) as cluster:
        assert cluster.url.startswith("rediss+cluster://")
        namespace = f"tls-{uuid.uuid4().hex[:8]}"
        async with running_worker(cluster.url, namespace):
            client = Client.from_url(cluster.url, namespace)
            try:
                assert await client.result(await client.enqueue(jt.add, x=1, y=2), timeout=30) == 3
            finally:
                await client.close()
            assert await asyncio.to_thread(sync_jobs, cluster.url, namespace) == [i + 2 for i in range(10)]


@contextlib.asynccontextmanager
async def running_worker(url: str, namespace: str) -> AsyncIterator[Worker]:
    redis = connect(url)
    worker = Worker(redis, TASKS, namespace, WorkerSettings(block_ms=100))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        await redis.aclose()
