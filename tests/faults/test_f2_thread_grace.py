"""F2 with thread jobs: SIGTERM a worker (grace 0.5 s) while it runs a thread job blocked in a C call. The
thread cannot be interrupted, so handing the job back ran it twice at once (here and on another worker,
1.8 s in the fault run). Now the stopping worker waits for it and its attempt ends as usual (once); a thread
job in Python code is interrupted and handed back, as an async one is.

Slice by default (a 3 s call); `TQFLOW_FAULT_SCALE=full` a 10 s call.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from harness import FULL, Ledger, Workers, seeded
from redis.asyncio import Redis

from tqflow.runtime.client import Client

pytestmark = pytest.mark.faults


async def until(client: Client, job: str, states: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while (state := (await client.job(job)).state) not in states:
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.02)
    return state


@pytest.mark.parametrize("task", ["blocked_in_c", "busy_in_python"])
async def test_f2_thread_job_outliving_the_grace_never_runs_twice_at_once(
    task: str, client: Client, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    seeded(f"F2-thread-{task}")
    ms = 10_000 if FULL else 3_000
    workers = Workers(
        redis_url,
        client.keys.namespace,
        tmp_path / "ledger",
        extra=["--tasks", "poison_tasks", "--grace", "0.5"],
        stderr=tmp_path / "workers.log",
    )
    try:
        for _ in range(2):
            workers.start()
        await workers.ready(redis, client.keys, 2)
        job = await client.enqueue(f"poison_tasks.{task}", key="t", ms=ms)
        while "t" not in Ledger.read(workers.ledger).starts:
            await asyncio.sleep(0.02)
        runner = Ledger.read(workers.ledger).starts["t"][0][0]
        first = next(p for p in workers.procs.values() if p.pid == runner)
        second = next(p for p in workers.procs.values() if p.pid != runner)
        await asyncio.sleep(0.3)
        sigterm = time.time()
        workers.signal(first, signal.SIGTERM)
        while first.poll() is None:
            await asyncio.sleep(0.01)
        exited = time.time()
        state = await until(client, job, {"succeeded", "dead"})
        ledger = Ledger.read(workers.ledger)
        alive = second.poll() is None
    finally:
        workers.stop_all()
    starts = ledger.starts.get("t", [])
    dones = ledger.done.get("t", [])
    ends = dones + [
        (int(pid), float(at))
        for kind, _, pid, at in (line.split() for line in workers.ledger.read_text().splitlines())
        if kind == "interrupted"
    ]
    spans = []
    for pid, began in starts:
        end = next((at for p, at in ends if p == pid and at >= began), exited if pid == first.pid else None)
        spans.append((pid, began, end))
    overlap = 0.0
    if len(spans) > 1:
        (_, _, end1), (_, began2, _) = spans[0], spans[1]
        overlap = max(0.0, (end1 or exited) - began2)
    print(
        f"[F2-thread-{task}] {state}: runs={len(starts)} done={len(dones)} exit_code={first.returncode}"
        f" stopping worker exited {exited - sigterm:.2f}s after SIGTERM; both ran at once for {overlap:.2f}s"
    )
    assert state == "succeeded" and first.returncode == 0 and alive
    assert overlap == 0.0  # never two attempts at once
    if task == "blocked_in_c":
        assert len(starts) == 1 and len(dones) == 1  # it ran to its end once, on the stopping worker
    else:  # interrupted at its next bytecode and handed back, as an async job is
        assert len(starts) == 2 and len(ends) == 2 and spans[0][2] is not None
        assert spans[1][1] - sigterm < 5
