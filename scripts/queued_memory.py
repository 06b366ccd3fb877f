"""Redis memory per queued standalone job, and the time of one big `enqueue_many`, in a namespace of its own.

    python scripts/queued_memory.py [redis://127.0.0.1:6379/12] [--jobs 1000] [--bulk 20000]

Memory is `MEMORY USAGE key SAMPLES 0` summed over the namespace's keys after `--jobs` single `enqueue`
calls of a task without options (the benchmark's "Redis memory per queued job"). The namespace's keys
are deleted before and after; nothing else in the db is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.task import task


@task
async def noop(x: int) -> int:
    return x


async def namespace_bytes(redis: Redis, prefix: str) -> int:
    total = 0
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        total += int(await redis.memory_usage(key, samples=0) or 0)
    return total


async def clear(redis: Redis, prefix: str) -> None:
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        await redis.delete(key)


async def main(url: str, jobs: int, bulk: int) -> None:
    client = Client(connect(url), f"mem-{uuid.uuid4().hex[:8]}")
    prefix = client.keys.prefix
    try:
        for _ in range(jobs):
            await client.enqueue(noop, x=1)
        used = await namespace_bytes(client.redis, prefix)
        print(f"memory: {used} bytes for {jobs} queued jobs = {used / jobs:.1f} bytes/job")
        await clear(client.redis, prefix)
        began = time.perf_counter()
        await client.enqueue_many([(noop, {"x": i}) for i in range(bulk)])
        secs = time.perf_counter() - began
        print(f"enqueue_many: {bulk} jobs in {secs:.2f} s = {bulk / secs:,.0f} jobs/s")
    finally:
        await clear(client.redis, prefix)
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--bulk", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.jobs, args.bulk))
