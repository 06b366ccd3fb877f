"""F14: Redis reaches `maxmemory` (policy noeviction) while healthy jobs run (RELIABILITY.md). Redis refuses
a script's writes only at its first write, and only when that command may grow memory: the heartbeat (it
began with HSET) was refused while fetches, finishes and the leader's reclaim went on, so the registry
emptied and the leader reclaimed live workers' jobs until they were dead-lettered `WorkerLost` (11 of 12).
Now: new work is refused loudly (enqueue raises OOM, fetch and promote wait), recovery pauses, heartbeats
and the ends of running attempts go through; no job is dead-lettered, none runs twice, memory stays at the
cap, and work flows again once memory is freed.

Slice by default (6 jobs of 5 s); `TQFLOW_FAULT_SCALE=full` runs the reported case (12 jobs of 12 s).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from harness import FULL, Ledger, Workers, seeded
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, ResponseError

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.store.keys import Keys

pytestmark = pytest.mark.faults
MAXMEMORY = 16 * 1024 * 1024
JUNK = b"x" * 32_000
DEAD_AFTER_S = 2.0  # fault_worker.py's


async def fill(redis: Redis, start: int) -> int:
    """SET junk keys until Redis says OOM; returns the next junk number."""
    n = start
    while True:
        try:
            await redis.set(f"junk:{n}", JUNK)
        except OutOfMemoryError:
            return n
        n += 1


async def ended(client: Client, ids: list[str]) -> bool:
    states = [(await client.job(i)).state for i in ids]
    return all(s in ("succeeded", "dead") for s in states)


async def test_f14_full_redis_refuses_new_work_and_reclaims_no_live_worker(tmp_path: Path) -> None:
    seeded("F14")
    count, seconds = (12, 12.0) if FULL else (6, 5.0)
    server = EmbeddedRedis(
        tmp_path / "redis",
        extra_args=("--maxmemory", str(MAXMEMORY), "--maxmemory-policy", "noeviction"),
    )
    server.start()
    redis = connect(server.url)
    client = Client(redis, "f14")
    keys = Keys("f14")
    workers = Workers(
        server.url, "f14", tmp_path / "ledger", extra=["--concurrency", "8"], stderr=tmp_path / "workers.log"
    )
    refused = peak = 0
    try:
        for _ in range(2):
            workers.start()
        await workers.ready(redis, keys, 2)
        jobs = {
            await client.enqueue("fault_tasks.work", key=f"h{i}", ms=int(seconds * 1000)): f"h{i}"
            for i in range(count)
        }
        while len(Ledger.read(workers.ledger).starts) < count:  # every job runs before Redis fills
            await asyncio.sleep(0.05)
        junk = await fill(redis, 0)
        began = time.monotonic()
        # Full for the jobs' whole run (each longer than the 2 s dead_after and the 3 s lease, so a refused
        # heartbeat would have had them reclaimed) and one dead_after more, idle: until then, not for a
        # fixed `seconds + 6` (the jobs ended 6 s before it did, on a quiet machine)
        ended_at: float | None = None
        while ended_at is None or time.monotonic() - ended_at < DEAD_AFTER_S:
            assert time.monotonic() - began < seconds + 60, "the jobs did not end while Redis was full"
            if ended_at is None and await ended(client, list(jobs)):
                ended_at = time.monotonic()
            junk = await fill(redis, junk)  # keep it full
            try:
                await client.enqueue("fault_tasks.work", key="late", ms=1)
            except ResponseError as err:
                assert "OOM" in str(err) or isinstance(err, OutOfMemoryError)
                refused += 1
            info = await redis.info("memory")
            peak = max(peak, int(info["used_memory"]))
            await asyncio.sleep(0.2)
        states = {j: (await client.job(j)).state for j in jobs}
        dead = await client.dead_letters(limit=100)
        ledger = Ledger.read(workers.ledger)
        await redis.delete(*[f"junk:{n}" for n in range(junk)])  # the operator frees memory
        after = await client.enqueue("fault_tasks.work", key="after", ms=1)
        deadline = time.monotonic() + 30
        while (await client.job(after)).state != "succeeded" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        after_state = (await client.job(after)).state
        alive = len(workers.alive())
    finally:
        workers.stop_all()
        await redis.aclose()
        server.stop()
    ran_twice = sum(1 for k in jobs.values() if len(ledger.starts.get(k, [])) > 1)
    succeeded = sum(1 for s in states.values() if s == "succeeded")
    print(
        f"[F14] {count} jobs of {seconds:.0f}s: succeeded={succeeded} dead_lettered={len(dead)}"
        f" ({[(d.error or {}).get('type') for d in dead]}) ran_twice={ran_twice} enqueues_refused={refused}"
        f" peak_used_memory={peak / 2**20:.2f} MiB (maxmemory {MAXMEMORY / 2**20:.0f} MiB)"
        f" after_freeing={after_state} workers_alive={alive}/2"
    )
    log = (tmp_path / "workers.log").read_text()
    assert not dead and succeeded == count and ran_twice == 0, log[-3000:]
    assert refused > 0  # new work refused loudly
    assert peak <= MAXMEMORY * 1.02  # memory stays at the cap
    assert after_state == "succeeded" and alive == 2
