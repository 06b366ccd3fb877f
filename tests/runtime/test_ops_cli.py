"""`tqrun worker --processes N` and the operating commands of `tqc`, as a user runs them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from tqflow.runtime.client import Client
from tqflow.runtime.jobs import JobFailed
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.store.cluster_keys import ClusterKeys

from cli_runner import tqc_on
from helpers import FLOWS

load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


async def test_worker_processes_and_the_ops_commands(client: Client, redis_url: str, namespace: str) -> None:
    queued = await client.enqueue(jt.add, x=1, priority="batch", delay="1h")
    dead = [await client.enqueue(jt.always_fails, message=f"m{i}") for i in range(2)]
    env = {**os.environ, "PYTHONPATH": f"{FLOWS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tqflow.cli.tqrun",
            "worker",
            "-m",
            "job_tasks",
            "--processes",
            "2",
            "--concurrency",
            "4",
            "--redis",
            redis_url,
            "--namespace",
            namespace,
            "--log-level",
            "warning",
        ],
        env=env,
        start_new_session=True,
    )
    try:
        for job_id in dead:
            with pytest.raises(JobFailed):
                await client.result(job_id, timeout=60)
        ids = await client.enqueue_many([(jt.add, {"x": i}) for i in range(200)])
        assert [await client.result(i, timeout=60) for i in ids[-3:]] == [198, 199, 200]
        workers = {(await client.job(i)).worker for i in ids}
        assert all(w.endswith(("-0", "-1")) for w in workers)  # the supervisor's worker processes
        for _ in range(100):  # on a busy machine the second process may still be starting
            registered: Any = await client.redis.zrange(ClusterKeys(client.keys).workers, 0, -1)
            if len(registered) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(registered) == 2, registered
        listing = await asyncio.to_thread(
            tqc_on, redis_url, namespace, "jobs", "list", "--state", "scheduled"
        )
        assert queued in listing.stdout, listing
        moved = await asyncio.to_thread(tqc_on, redis_url, namespace, "jobs", "reprioritize", queued, "high")
        assert moved.returncode == 0 and "updated" in moved.stdout, moved
        shown = await asyncio.to_thread(tqc_on, redis_url, namespace, "dlq", "list")
        assert all(d in shown.stdout for d in dead) and "ValueError: m0" in shown.stdout, shown
        replayed = await asyncio.to_thread(tqc_on, redis_url, namespace, "dlq", "replay", "--all")
        assert "replayed 2 of 2" in replayed.stdout, replayed
        cancelled = await asyncio.to_thread(tqc_on, redis_url, namespace, "cancel", queued)
        assert "cancelled" in cancelled.stdout, cancelled
        missing = await asyncio.to_thread(tqc_on, redis_url, namespace, "jobs", "show", "nope")
        assert missing.returncode == 5
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert worker.returncode == 0
