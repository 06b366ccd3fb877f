"""Where an idle worker's submit-to-done latency goes, step by step.

Usage: bench/.venvs/tqflow/bin/python bench/latency_probe.py [--n 500] [--sync] [--gap-ms G] [--hooks]
    [--loop L]

Starts one worker in a child process (this file, `--worker`), instrumented to stamp the moment its
blocking stream read returned and the moment it handed the attempt to its runner; the task body stamps its own
start and pushes the three stamps to a list. The producer submits one job, BLPOPs the stamps, and
prints p50/p90/p99 of each step (perf_counter is CLOCK_MONOTONIC: comparable across processes):

  submit          the enqueue call, as the producer sees it
  wake            submit returned -> the worker's blocking XREADGROUP returned
  start           -> the attempt was handed to the runner: this worker's (a lean job's delivery started it;
                     any other entry waits for start_many.lua's answer)
  body            -> the task body began (Attempt, spawn, payload decode, argument validation)
  done            -> the producer's BLPOP returned (the body's RPUSH and the producer's wake-up)

--sync submits with SyncClient (a producer without an event loop), as huey's and rq's are measured.
--hooks gives the worker `tqrun worker`'s hooks (observability.for_worker: metrics, heartbeat, job log).
--gap-ms G makes the producer sleep G ms after each job (spaced arrivals; without it each job is submitted as
soon as the last one's stamps arrive, as the benchmark's latency loop does). A job queued before the worker
blocked again is taken by its fetch call, not woken for: the report counts those, and their 'wake' is the
fetch's reply.
Uses db 10 and the namespace `probe` (its keys are deleted at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from typing import Any

from redis.asyncio import Redis

from tqflow.runtime import eventloop, task

URL = os.environ.get("PROBE_URL", "redis://127.0.0.1:6379/10")
NAMESPACE = "probe"
STAMPS = "probe:stamps"
MARKS = {"read": 0.0, "started": 0.0, "fetched": 0.0}
STEPS = ("submit", "wake", "start", "body", "done", "total")
_redis: Redis | None = None


@task(name="probe.stamped")
async def stamped(x: int) -> int:
    global _redis
    body = time.perf_counter()
    if _redis is None:
        _redis = Redis.from_url(URL)
    await _redis.rpush(STAMPS, f"{MARKS['read']} {MARKS['started']} {body} {MARKS['fetched']}")
    return x


async def worker() -> None:
    from tqflow.runtime.connection import connect
    from tqflow.runtime.worker import Worker, WorkerSettings

    redis = connect(URL)
    hooks = []
    if os.environ.get("PROBE_HOOKS"):  # `tqrun worker`'s hooks: metrics, heartbeat, job log, history
        from tqflow.runtime.logging import configure_logging
        from tqflow.runtime.observability import for_worker

        configure_logging("info")  # as `tqrun worker` does by default: a job's start line is debug

        every = list(for_worker(redis, NAMESPACE, WorkerSettings().concurrency).hooks)
        picked = os.environ[
            "PROBE_HOOKS"
        ]  # "1": all; or the names of some (e.g. JobLogHooks,AttemptRecorder)
        hooks = every if picked == "1" else [h for h in every if type(h).__name__ in picked.split(",")]
    w = Worker(redis, {stamped.name: stamped}, NAMESPACE, WorkerSettings(), hooks=hooks)
    read, spawn = w.redis.xreadgroup, w.runner.spawn

    async def timed_read(*args: Any, **kwargs: Any) -> Any:
        reply = await read(*args, **kwargs)
        if reply:
            MARKS["read"] = time.perf_counter()
        return reply

    def timed_spawn(attempt: Any) -> Any:
        MARKS["started"] = time.perf_counter()
        return spawn(attempt)

    run = w.context.scripts.run

    async def timed_run(call: Any) -> Any:
        reply = await run(call)
        if call.name == "fetch" and reply:  # the job was queued before the worker blocked: not a wake
            MARKS["read"] = MARKS["fetched"] = time.perf_counter()
        return reply

    w.redis.xreadgroup = timed_read  # type: ignore[method-assign]
    w.context.scripts.run = timed_run  # type: ignore[method-assign]
    w.runner.spawn = timed_spawn  # type: ignore[method-assign]
    await w.run(asyncio.Event())


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    pick = [values[min(len(values) - 1, int(len(values) * q))] for q in (0.5, 0.9, 0.99)]
    return "p50 {:.3f}  p90 {:.3f}  p99 {:.3f} ms".format(*pick)


async def produce(n: int, sync: bool, gap_ms: float) -> tuple[dict[str, list[float]], int]:
    from tqflow.runtime.client import Client
    from tqflow.runtime.sync import SyncClient

    r = Redis.from_url(URL)
    client = SyncClient.from_url(URL, NAMESPACE) if sync else Client.from_url(URL, NAMESPACE)
    rows: dict[str, list[float]] = {step: [] for step in STEPS}
    fetched = 0
    try:
        for i in range(n + 20):
            t0 = time.perf_counter()
            if isinstance(client, SyncClient):
                client.enqueue(stamped, x=i)
            else:
                await client.enqueue(stamped, x=i)
            t1 = time.perf_counter()
            got = await r.blpop([STAMPS], timeout=10)
            t2 = time.perf_counter()
            if got is None:
                raise RuntimeError("the job did not run within 10 s")
            read, started, body, by_fetch = map(float, got[1].split())
            if i >= 20:  # warm-up
                fetched += by_fetch == read
                steps = (t1 - t0, read - t1, started - read, body - started, t2 - body, t2 - t0)
                for step, seconds in zip(STEPS, steps, strict=True):
                    rows[step].append(seconds * 1000)
            if gap_ms:
                time.sleep(gap_ms / 1000)  # the producer idles between jobs, as spaced arrivals do
    finally:
        if isinstance(client, SyncClient):
            client.close()
        else:
            await client.close()
        keys = [k async for k in r.scan_iter("{probe}*")]
        if keys:
            await r.delete(*keys)
        await r.delete(STAMPS)
        await r.aclose()
    return rows, fetched


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--sync", action="store_true", help="submit with SyncClient")
    parser.add_argument("--loop", default="auto", choices=eventloop.CHOICES, help="the worker's event loop")
    parser.add_argument(
        "--gap-ms", type=float, default=0.0, help="the producer sleeps this long between jobs"
    )
    parser.add_argument("--hooks", action="store_true", help="the worker runs `tqrun worker`'s hooks")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        eventloop.run(worker(), opts.loop)
        return
    env = {**os.environ, **({"PROBE_HOOKS": "1"} if opts.hooks else {})}
    child = subprocess.Popen([sys.executable, __file__, "--worker", "--loop", opts.loop], env=env)
    try:
        time.sleep(3)  # the worker's start: groups, scripts, registry
        rows, fetched = asyncio.run(produce(opts.n, opts.sync, opts.gap_ms))
    finally:
        child.terminate()
        child.wait(10)
    producer, loop = "SyncClient" if opts.sync else "Client", eventloop.resolve(opts.loop)
    print(
        f"idle submit-to-done, {opts.n} jobs, {producer} producer, worker on {loop}, gap {opts.gap_ms} ms; "
        f"{fetched} of them fetched (queued before the worker blocked again; 'wake' is the fetch's reply)"
    )
    for step, values in rows.items():
        print(f"  {step:7} {percentiles(values)}")


if __name__ == "__main__":
    main()
