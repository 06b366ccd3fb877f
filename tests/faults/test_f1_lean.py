"""F1 with standalone lean jobs (queued as a stream entry alone, no record until they start): SIGKILL
churn of worker processes while jobs are submitted; none is lost, none runs twice but on a killed worker,
nothing is left pending. The flow-run version is in test_faults.py."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import pytest
from harness import FULL, Ledger, Workers, check, seeded
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.store import lean

pytestmark = pytest.mark.faults


async def submit_jobs(client: Client, total: int, seconds: float, rng: random.Random) -> dict[str, str]:
    """Enqueue `total` lean jobs (keys j0…) in bulk batches spread over `seconds`; returns id -> key."""
    jobs: dict[str, str] = {}
    batches = max(1, int(seconds * 4))
    for batch in range(batches):
        size = total // batches + (1 if batch < total % batches else 0)
        keys = [f"j{len(jobs) + i}" for i in range(size)]
        calls = [("fault_tasks.work", {"key": k, "ms": rng.randint(20, 200)}) for k in keys]
        ids = await client.enqueue_many(calls)
        jobs.update(zip((str(i) for i in ids), keys, strict=True))
        await asyncio.sleep(seconds / batches)
    return jobs


async def end_states(client: Client, ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {i: (await client.job(i)).state for i in ids}
        if all(s in ("succeeded", "dead", "cancelled", "skipped") for s in states.values()):
            break
        await asyncio.sleep(0.2)
    return states


async def test_f1_sigkill_churn_with_lean_jobs(
    client: Client, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    rng = seeded("F1-lean")
    jobs_n, every, duration, size = (5_000, 2.0, 20.0, 4) if FULL else (400, 1.0, 4.0, 3)
    workers = Workers(redis_url, client.keys.namespace, tmp_path / "ledger")
    try:
        for _ in range(size):
            workers.start()
        await workers.ready(redis, client.keys, size)
        submitter = asyncio.create_task(submit_jobs(client, jobs_n, duration, rng))
        began = time.monotonic()
        while time.monotonic() - began < duration:
            await asyncio.sleep(every)
            workers.signal(rng.choice(workers.alive()), signal.SIGKILL)
            workers.start()
        jobs = await submitter
        assert all(lean.parse(i) for i in jobs)
        states = await end_states(client, list(jobs), timeout=120)
        ledger = Ledger.read(workers.ledger)
        figures = await check(redis, client.keys, jobs, ledger, workers.killed, states)
    finally:
        workers.stop_all()
    print(f"[F1-lean] {figures.line()} kills={len(workers.killed)}")
    assert figures.lost == 0 and figures.duplicates_not_from_killed == 0, figures
    assert figures.commits_duplicated == 0 and figures.pending_left == 0, figures
