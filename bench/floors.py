"""What the client library alone allows on this machine: the floors under every target.

Usage: bench/.venvs/tqflow/bin/python bench/floors.py [--n 20000]
Times bare redis-py calls against the benchmark's Redis (db 9, keys `pb:floor:*`, deleted after):
a sync and an asyncio round trip, an EVALSHA of a trivial script, a pipelined page, and the task
body (RPUSH) run by 50 concurrent asyncio tasks in one process. No queue does less per job than one
round trip, so these bound what any Python producer or worker can reach here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import redis
import redis.asyncio as aredis

URL = "redis://127.0.0.1:6379/9"
KEY = "pb:floor:list"
RESULTS = Path(__file__).resolve().parent / "results"


def sync_round_trips(n: int) -> float:
    r = redis.Redis.from_url(URL)
    t0 = time.perf_counter()
    for i in range(n):
        r.lpush(KEY, i)
    secs = time.perf_counter() - t0
    r.delete(KEY)
    return n / secs


async def async_round_trips(n: int) -> float:
    r = aredis.Redis.from_url(URL)
    t0 = time.perf_counter()
    for i in range(n):
        await r.lpush(KEY, i)
    secs = time.perf_counter() - t0
    await r.delete(KEY)
    await r.aclose()
    return n / secs


async def async_evalsha(n: int) -> float:
    r = aredis.Redis.from_url(URL)
    script = r.register_script("redis.call('LPUSH', KEYS[1], ARGV[1]) return 1")
    await script(keys=[KEY], args=[0])
    t0 = time.perf_counter()
    for i in range(n):
        await script(keys=[KEY], args=[i])
    secs = time.perf_counter() - t0
    await r.delete(KEY)
    await r.aclose()
    return n / secs


async def async_pipelined(n: int, page: int = 1000) -> float:
    r = aredis.Redis.from_url(URL)
    t0 = time.perf_counter()
    for start in range(0, n, page):
        async with r.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + page)):
                pipe.lpush(KEY, i)
            await pipe.execute()
    secs = time.perf_counter() - t0
    await r.delete(KEY)
    await r.aclose()
    return n / secs


async def concurrent_task_bodies(n: int, concurrency: int = 50) -> float:
    """The benchmark's task body (one RPUSH) as `concurrency` asyncio tasks, like a worker runs it."""
    r = aredis.Redis.from_url(URL)
    sem = asyncio.Semaphore(concurrency)

    async def body(i: int) -> None:
        async with sem:
            await r.rpush(KEY, i)

    t0 = time.perf_counter()
    await asyncio.gather(*(body(i) for i in range(n)))
    secs = time.perf_counter() - t0
    await r.delete(KEY)
    await r.aclose()
    return n / secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    n = ap.parse_args().n
    runs = ap.parse_args().runs
    rows = {
        "sync round trip (LPUSH), one by one": lambda: sync_round_trips(n),
        "asyncio round trip (LPUSH), one by one": lambda: asyncio.run(async_round_trips(n)),
        "asyncio EVALSHA (trivial script), one by one": lambda: asyncio.run(async_evalsha(n)),
        "asyncio pipelined LPUSH, pages of 1,000": lambda: asyncio.run(async_pipelined(n)),
        "task body (RPUSH) x 50 concurrent asyncio tasks": lambda: asyncio.run(concurrent_task_bodies(n)),
    }
    out = {}
    for label, fn in rows.items():
        rates = sorted(fn() for _ in range(runs))
        out[label] = rates
        print(
            f"{label:<50} {rates[len(rates) // 2]:>10,.0f} ops/s  (min {rates[0]:,.0f}, max {rates[-1]:,.0f})"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "floors.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
