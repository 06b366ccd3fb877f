"""F23: a client on a host whose clock is 30 s ahead or behind. A delay is relative: a job delayed 5 s
must be due 5 s after it was submitted by Redis's clock (the one the workers' promoters read), not 5 s
after the skewed host's "now" (35 s late, or 25 s early: at once). The skew is simulated in this process
as libfaketime would (every `time.time` read shifted), as fault_worker.py --skew-ms does for workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from tqflow.runtime import clock
from tqflow.runtime.client import Client
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.sync import SyncClient

pytestmark = pytest.mark.faults
DELAY_S = 5


@pytest.fixture(params=[30_000, -30_000], ids=["ahead", "behind"])
def skewed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    real = time.time
    skew_ms: int = request.param
    monkeypatch.setattr(time, "time", lambda: real() + skew_ms / 1000)
    monkeypatch.setattr(clock, "_skew_ms", 0)  # a fresh process: no reading of Redis's clock yet
    monkeypatch.setattr(clock, "_synced_at", float("-inf"), raising=False)
    yield skew_ms


async def redis_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_a_delay_counts_from_redis_clock(skewed: int, redis: Redis, namespace: str) -> None:
    client = Client(redis, namespace)
    before = await redis_ms(redis)
    job = await client.enqueue("t.noop", delay=DELAY_S)
    after = await redis_ms(redis)
    due = await redis.zscore(Keys(namespace).delayed, str(job))
    assert due is not None
    # before the fix: due by the host's clock, 30 s off
    assert before + DELAY_S * 1000 - 100 <= due <= after + DELAY_S * 1000 + 100, (skewed, due - before)
    assert (await client.job(str(job))).due_ms == due


async def test_the_sync_client_too(skewed: int, redis: Redis, redis_url: str, namespace: str) -> None:
    sync = SyncClient(redis_url, namespace)
    try:
        before = await redis_ms(redis)
        job = await asyncio.to_thread(sync.enqueue, "t.noop", delay=DELAY_S)
        many = await asyncio.to_thread(sync.enqueue_many, [("t.noop", {})] * 3, delay=DELAY_S)
        after = await redis_ms(redis)
    finally:
        sync.close()
    for one in [job, *many]:
        due = await redis.zscore(Keys(namespace).delayed, str(one))
        assert due is not None
        assert before + DELAY_S * 1000 - 100 <= due <= after + DELAY_S * 1000 + 100, (skewed, due - before)
