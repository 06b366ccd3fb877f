"""Delay lateness: how late delayed jobs start (due time to start), p50 and p99.

    python tests/runtime/lateness.py --redis redis://127.0.0.1:6379 [--jobs 10000] [--spread 10]

Submits `--jobs` no-op jobs with delays spread evenly over `--spread` seconds (bulk, one call), runs
one in-process worker, and reads each job's `due` and `started` times (ms, written by Redis scripts).
Without --redis it starts an embedded server. tests/runtime/test_lateness.py runs a small slice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import uuid
from typing import Any

from tqflow.runtime import task
from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.worker import Worker, WorkerSettings


@task(name="lateness.noop")
async def noop() -> None:
    return None


async def measure(url: str, jobs: int, spread_s: float, namespace: str | None = None) -> dict[str, float]:
    namespace = namespace or f"lateness-{uuid.uuid4().hex[:8]}"
    redis = connect(url)
    client = Client(redis, namespace)
    worker = Worker(connect(url), {noop.name: noop}, namespace, WorkerSettings(concurrency=200))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.sleep(0.3)
        lead = 1.0  # the first job is due after the submission is done
        calls: list[Any] = [(noop, {}, {"delay": lead + spread_s * i / jobs}) for i in range(jobs)]
        ids = await client.enqueue_many(calls, atomic=False)
        for job_id in ids[-1:]:
            await client.result(job_id, timeout=lead + spread_s + 60)
        await asyncio.sleep(0.5)
        late: list[int] = []
        for start in range(0, len(ids), 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for job_id in ids[start : start + 1000]:
                    pipe.hmget(client.keys.job(job_id), "due", "started")
                rows = await pipe.execute()
            late += [int(started) - int(due) for due, started in rows if due and started]
    finally:
        stop.set()
        await running
        keys = [k async for k in redis.scan_iter(match=f"{{{namespace}}}*", count=1000)]
        for start in range(0, len(keys), 500):
            await redis.unlink(*keys[start : start + 500])
        await client.close()
        await worker.redis.aclose()
    late.sort()
    return {
        "jobs": len(late),
        "p50_ms": statistics.median(late),
        "p99_ms": late[int(len(late) * 0.99) - 1],
        "max_ms": late[-1],
        "min_ms": late[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", default=None)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=10.0)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.redis
        if url is None:
            from tqflow.runtime.embedded import EmbeddedRedis

            url = stack.enter_context(EmbeddedRedis()).url
        figures = asyncio.run(measure(url, args.jobs, args.spread))
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    sys.exit(0)


if __name__ == "__main__":
    main()
