"""Retention soak: standalone jobs and 4-job runs at a constant rate for a while, with short retention
windows; Redis memory (used_memory) is sampled and must stop growing once the windows have passed.

    python bench/retention_soak.py [--seconds 600] [--window 60] [--jobs-per-s 50] [--runs-per-s 5]
        [--redis URL]

Without --redis it starts a private server. Prints one line per sample and a verdict: the growth of memory
between the end of the first window (+ one pruning interval) and the end, against the growth before it.
Not a test: figures go to docs/cluster.md (retention section), with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tqflow.compiler import compile_file  # noqa: E402
from tqflow.runtime.attempts import AttemptRecorder  # noqa: E402
from tqflow.runtime.client import Client  # noqa: E402
from tqflow.runtime.connection import connect  # noqa: E402
from tqflow.runtime.embedded import EmbeddedRedis  # noqa: E402
from tqflow.runtime.registry import load_tasks  # noqa: E402
from tqflow.runtime.worker import Worker, WorkerSettings  # noqa: E402

FLOWS = ROOT / "tests" / "flows"


async def soak(url: str, seconds: float, window_ms: int, jobs_per_s: int, runs_per_s: int) -> None:
    namespace = f"soak-{os.getpid()}"
    tasks = load_tasks(["job_tasks", "sample_tasks"], [FLOWS])
    plan = compile_file(FLOWS / "diamond.tqflow").plan
    assert plan is not None
    client = Client(connect(url, namespace=namespace), namespace)
    await client.deploy(plan)
    settings = WorkerSettings(
        concurrency=50, result_ttl_ms=window_ms, keep_history_ms=window_ms, keep_runs_ms=window_ms
    )
    worker_redis = connect(url, namespace=namespace)
    worker = Worker(
        worker_redis,
        tasks,
        namespace,
        settings,
        hooks=[AttemptRecorder(worker_redis, namespace, ttl_s=window_ms // 1000)],
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    admin = connect(url)
    began = time.monotonic()
    samples: list[tuple[float, int]] = []
    next_sample = 0.0
    tick = 0
    while (elapsed := time.monotonic() - began) < seconds:
        await client.enqueue_many([("job_tasks.add", {"x": tick, "y": 1}) for _ in range(jobs_per_s)])
        for _ in range(runs_per_s):
            await client.start_run("diamond")
        tick += 1
        if elapsed >= next_sample:
            used = int((await admin.info("memory"))["used_memory"])
            keys = int(await admin.dbsize())
            samples.append((elapsed, used))
            load = os.getloadavg()[0]
            print(
                f"t={elapsed:6.0f}s used_memory={used / 1e6:8.2f} MB keys={keys:8d} load1={load:.1f}",
                flush=True,
            )
            next_sample += 10
        await asyncio.sleep(max(0.0, tick - (time.monotonic() - began)))
    stop.set()
    await running
    settle = window_ms / 1000 + 20  # a window, then one pruning pass (10 s) and margin
    before = [u for t, u in samples if t <= settle]
    after = [u for t, u in samples if t >= settle]
    if before and len(after) > 1:
        print(
            f"growth before {settle:.0f}s: {(before[-1] - before[0]) / 1e6:+.2f} MB; "
            f"after: {(after[-1] - after[0]) / 1e6:+.2f} MB "
            f"(min {min(after) / 1e6:.2f}, max {max(after) / 1e6:.2f})"
        )
    await client.close()
    await worker_redis.aclose()
    await admin.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--window", type=float, default=60, help="keep-results/history/runs, in seconds")
    parser.add_argument("--jobs-per-s", type=int, default=50)
    parser.add_argument("--runs-per-s", type=int, default=5)
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    window = int(args.window * 1000)
    if args.redis:
        asyncio.run(soak(args.redis, args.seconds, window, args.jobs_per_s, args.runs_per_s))
        return
    with EmbeddedRedis() as server:
        asyncio.run(soak(server.url, args.seconds, window, args.jobs_per_s, args.runs_per_s))


if __name__ == "__main__":
    main()
