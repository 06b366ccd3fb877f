"""F9: a bulk submit of 1,000 jobs interrupted by SIGKILL of the client process leaves 0 or 1,000 jobs,
never a part; 50 concurrent submits sharing one unique key accept exactly one.

Slice by default; `TQFLOW_FAULT_SCALE=full pytest -m faults tests/faults/test_f9_bulk_unique.py -s`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from harness import FULL, HERE, seeded
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.jobs import JobRejected, Unique

pytestmark = pytest.mark.faults


async def count_jobs(redis: Redis, namespace: str) -> int:
    return len([k async for k in redis.scan_iter(match=f"{{{namespace}}}:job:*", count=1000)])


async def cleanup(redis: Redis, namespace: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{{{namespace}}}*", count=1000)]
    for start in range(0, len(keys), 500):
        await redis.unlink(*keys[start : start + 500])


async def test_f9_bulk_all_or_nothing_when_the_client_dies(redis: Redis, redis_url: str) -> None:
    rng = seeded("F9-bulk")
    rounds, size = (40, 1000) if FULL else (4, 1000)
    seen: Counter[int] = Counter()
    for _ in range(rounds):
        namespace = f"test-f9-{uuid.uuid4().hex[:10]}"
        command = [sys.executable, str(HERE / "bulk_client.py"), redis_url, namespace, str(size)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"go"
            time.sleep(rng.uniform(0, 0.08))  # somewhere inside the call (it takes ~50-200 ms here)
            proc.kill()
        finally:
            proc.kill()
            proc.wait()
        await asyncio.sleep(0.05)
        seen[await count_jobs(redis, namespace)] += 1
        await cleanup(redis, namespace)
    print(f"[F9] bulk of {size} killed mid-call {rounds} times: jobs visible afterwards {dict(seen)}")
    assert set(seen) <= {0, size}, seen


async def test_f9_one_unique_key_fifty_concurrent_submits(
    redis_url: str, namespace: str, redis: Redis
) -> None:
    seeded("F9-unique")
    submitters = 50
    connections = [connect(redis_url) for _ in range(submitters)]
    clients = [Client(c, namespace) for c in connections]
    unique = Unique(key="order-42", within="1h", conflict="reject")

    async def one(client: Client) -> str:
        try:
            await client.enqueue("f9.job", unique=unique, delay="1h", n=1)
            return "accepted"
        except JobRejected:
            return "rejected"

    try:
        outcomes = Counter(await asyncio.gather(*(one(c) for c in clients)))
    finally:
        for c in connections:
            await c.aclose()
    print(f"[F9] {submitters} concurrent submits of one unique key: {dict(outcomes)}")
    assert outcomes == {"accepted": 1, "rejected": submitters - 1}
    assert await count_jobs(redis, namespace) == 1
