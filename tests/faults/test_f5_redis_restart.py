"""F5: Redis killed with SIGKILL during submissions and restarted on its AOF (RELIABILITY.md).

Workers and the submitting client reconnect by themselves; delayed jobs due during the outage run soon after
the restart; what was lost matches the fsync policy: `appendfsync always` loses no acknowledged submission,
`everysec` at most about a second of them (a crash of the Redis process alone loses nothing that reached
the kernel, so both usually show 0).

Slice by default; `TQFLOW_FAULT_SCALE=full pytest -m faults tests/faults/test_f5_redis_restart.py -s`.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from harness import FULL, Ledger, Workers, fault_plan, seeded, wait_all
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, TimeoutError

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.store.keys import Keys

pytestmark = pytest.mark.faults
DOWN = (ConnectionError, TimeoutError, OSError)


async def keep_submitting(client: Client, until: float, acked: dict[str, tuple[str, float]]) -> int:
    """Start runs until `until`; record the acknowledged ones (run id -> key, when). Returns refusals."""
    refused, n = 0, 0
    while time.monotonic() < until:
        key = f"k{n}"
        n += 1
        try:
            run = await client.start_run("fault", {"key": key, "ms": 5})
            acked[run] = (key, time.monotonic())
        except DOWN:
            refused += 1
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.005)
    return refused


async def outage(server: EmbeddedRedis, down_s: float) -> float:
    """SIGKILL the server, keep it down `down_s`, start it again on the same folder; when it was killed."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    killed = time.monotonic()
    await asyncio.sleep(down_s)
    await asyncio.to_thread(server.start, 30)
    return killed


async def delayed_during(client: Client, rng: random.Random, count: int, due_in: float) -> list[str]:
    """Standalone jobs due `due_in` seconds from now (inside the coming outage)."""
    keys = [f"d{rng.randrange(1 << 30)}" for _ in range(count)]
    for key in keys:
        await client.enqueue("fault_tasks.work", key=key, ms=1, delay=f"{int(due_in * 1000)}ms")
    return keys


# The slice runs `always` only (the default suite must stay fast); the full run adds `everysec`.
@pytest.mark.parametrize("fsync", ["always", "everysec"] if FULL else ["always"])
async def test_f5_redis_killed_and_restarted(fsync: str, tmp_path: Path) -> None:
    rng = seeded(f"F5-{fsync}")
    seconds, outages, down_s = (20.0, 3, 2.0) if FULL else (4.0, 1, 1.0)
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True, extra_args=("--appendfsync", fsync))
    server.start()
    redis: Redis = connect(server.url)
    client = Client(redis, "f5")
    keys = Keys("f5")
    workers = Workers(server.url, "f5", tmp_path / "ledger", stderr=tmp_path / "workers.log")
    try:
        await client.deploy(fault_plan())
        for _ in range(2):
            workers.start()
        await workers.ready(redis, keys, 2)
        acked: dict[str, tuple[str, float]] = {}
        began = time.monotonic()
        submitter = asyncio.create_task(keep_submitting(client, began + seconds, acked))
        kills: list[float] = []
        restarts: list[float] = []
        delayed: list[str] = []
        for _ in range(outages):
            await asyncio.sleep(seconds / (outages + 1))
            delayed += await delayed_during(client, rng, 10, 0.3)
            kills.append(await outage(server, down_s))
            restarts.append(time.monotonic())
        refused = await submitter
        runs = {run: key for run, (key, _) in acked.items()}
        await wait_all(redis, keys, runs, timeout=60)
        await asyncio.sleep(1.0)
        ledger = Ledger.read(workers.ledger)
        states = [await redis.hget(keys.run(run), "state") for run in runs]
        alive = len(workers.alive())
    finally:
        workers.stop_all()
        await redis.aclose()
        server.stop()
    missing = [run for run, state in zip(runs, states, strict=True) if state is None]
    window = [run for run in missing if any(0 <= k - acked[run][1] <= 1.2 for k in kills)]
    not_done = sum(1 for state in states if state not in (None, "succeeded"))
    never_ran = sum(1 for key in delayed if key not in ledger.done)
    late = [min(at for _, at in ledger.starts[key]) for key in delayed if key in ledger.starts]
    wall_restart = time.time() - (time.monotonic() - restarts[-1])
    after = max(late) - wall_restart if late else float("nan")
    print(
        f"[F5-{fsync}] acknowledged={len(runs)} refused_while_down={refused} lost={len(missing)}"
        f" (of them acknowledged within 1.2 s before a kill: {len(window)}) not_succeeded={not_done}"
        f" outages={outages}x{down_s}s delayed_due_in_outage={len(delayed)} never_ran={never_ran}"
        f" last_delayed_started_after_restart_s={after:.2f} workers_alive={alive}/2"
    )
    log = (tmp_path / "workers.log").read_text()
    assert alive == 2, log[-3000:]  # the workers rode out the outage
    assert not_done == 0 and never_ran == 0
    if fsync == "always":
        assert not missing
    else:
        assert len(missing) == len(window)  # only what the last second before a kill may hold
