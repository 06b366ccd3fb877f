from __future__ import annotations

import asyncio

from tqflow.runtime.registry import load_tasks
from tqflow.runtime.sync import SyncClient

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


async def test_the_sync_wrapper(redis_url: str, namespace: str, start_worker: WorkerFactory) -> None:
    await start_worker(TASKS)

    def use() -> tuple[int, str]:
        with SyncClient.from_url(redis_url, namespace) as client:
            job_id = client.enqueue(jt.add, x=2, y=3)
            return client.result(job_id, timeout=10), client.job(job_id).state

    assert await asyncio.to_thread(use) == (5, "succeeded")
