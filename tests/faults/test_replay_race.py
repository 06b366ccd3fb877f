"""Concurrent DLQ replays (issue 14): 40 parallel replays of one dead-lettered job that fails again in 1 ms
ran it 14 times, because a replay only checked that the job was dead, and it was dead again by the time the
later replays arrived. Replay now consumes the dead-lettering the caller saw (when it died, and how often it
was replayed): one DLQ entry enqueues at most once per dead-lettering.

Slice: 40 replays, 3 rounds; `TQFLOW_FAULT_SCALE=full`: 200 replays, 10 rounds.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from harness import FULL, Ledger, Workers, seeded
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect

pytestmark = pytest.mark.faults


async def dead(client: Client, job: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (await client.job(job)).state != "dead":
        assert time.monotonic() < deadline, await client.job(job)
        await asyncio.sleep(0.02)


async def test_concurrent_replays_enqueue_once_per_dead_lettering(
    client: Client, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    rng = seeded("replay-race")
    parallel, rounds = (200, 10) if FULL else (40, 3)
    workers = Workers(
        redis_url,
        client.keys.namespace,
        tmp_path / "ledger",
        extra=["--tasks", "poison_tasks", "--concurrency", "4"],
    )
    clients = [Client(connect(redis_url), client.keys.namespace) for _ in range(8)]
    try:
        workers.start()
        await workers.ready(redis, client.keys, 1)
        job = await client.enqueue("poison_tasks.fails_fast", key="ff")
        await dead(client, job)
        replayed = []
        for _ in range(rounds):
            entry = (await client.job(job)).finished_ms  # the DLQ entry every caller sees (the dashboard)

            async def caller(n: int, entry: int | None = entry) -> dict[str, str]:
                await asyncio.sleep(rng.uniform(0, 0.15))  # requests arrive over 150 ms
                return await clients[n % len(clients)].replay([job], seen={job: entry or ""})

            results = await asyncio.gather(*(caller(n) for n in range(parallel)))
            replayed.append(sum(1 for r in results if r[job] == "replayed"))
            await dead(client, job)
            await asyncio.sleep(0.3)  # nothing else is coming
            await dead(client, job)
        runs = len(Ledger.read(workers.ledger).starts.get("ff", []))
    finally:
        workers.stop_all()
        for c in clients:
            await c.redis.aclose()
    print(
        f"[replay-race] {rounds} rounds of {parallel} parallel replays: replayed per round {replayed},"
        f" runs {runs} (1 first + {runs - 1} replayed)"
    )
    assert sum(replayed) == runs - 1  # every replay that said so ran once, no other
    assert all(n == 1 for n in replayed), replayed  # one replay per dead-lettering
