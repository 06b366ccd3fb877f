"""F7: poison jobs (RELIABILITY.md). One raises, one calls os._exit, two hang, one segfaults its pool
process; good jobs are submitted throughout and must keep flowing.

Slice by default; `TQFLOW_FAULT_SCALE=full pytest -m faults tests/faults/test_f7_poison.py -s` for more.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from harness import FULL, HERE, Ledger, Workers, seeded
from redis.asyncio import Redis

from tqflow.runtime.client import Client

sys.path.insert(0, str(HERE / "flows"))
import poison_tasks as pt

pytestmark = pytest.mark.faults

TERMINAL = {"succeeded", "dead", "cancelled", "skipped"}


async def settle(client: Client, workers: Workers, ids: list[str], timeout: float) -> dict[str, str]:
    """Wait until every job is terminal, restarting any worker that died (the supervisor's job)."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        for proc in list(workers.procs.values()):
            if proc.poll() is not None and len(workers.alive()) < 2:
                workers.killed.add(proc.pid)
                workers.start()
        states = {i: (await client.job(i)).state for i in ids}
        if all(s in TERMINAL for s in states.values()):
            return states
        await asyncio.sleep(0.2)
    return states


async def test_f7_poison_jobs(client: Client, redis: Redis, redis_url: str, tmp_path: Path) -> None:
    rng = seeded("F7")
    goods = 200 if FULL else 40
    deliveries = 5 if FULL else 2
    workers = Workers(
        redis_url,
        client.keys.namespace,
        tmp_path / "ledger",
        extra=["--tasks", "poison_tasks", "--max-deliveries", str(deliveries), "--lease", "2000"],
    )
    try:
        for _ in range(2):
            workers.start()
        await workers.ready(redis, client.keys, 2)
        began = time.monotonic()
        poison = {
            "raises": await client.enqueue(pt.raises, key="p-raises"),
            "hangs": await client.enqueue(pt.hangs, key="p-hangs"),
            "hangs_in_process": await client.enqueue(pt.hangs_in_process, key="p-hproc"),
            "segfaults": await client.enqueue(pt.segfaults, key="p-segv"),
        }
        good: list[str] = []
        for n in range(goods):
            if n == goods // 2:  # after the others: the crash takes the jobs its worker holds down with it
                await settle(client, workers, [*poison.values(), *good], timeout=60)
                poison["exits"] = await client.enqueue(pt.exits, key="p-exits")
            task = pt.good if rng.random() < 0.7 else pt.good_in_process
            good.append(await client.enqueue(task, key=f"g{n}"))
            if n % 10 == 0:
                await asyncio.sleep(0.1)
        states = await settle(client, workers, [*poison.values(), *good], timeout=90)
        took = time.monotonic() - began
        ledger = Ledger.read(workers.ledger)
        infos = {name: await client.job(job) for name, job in poison.items()}
    finally:
        workers.stop_all()
    starts = {name: len(ledger.starts.get(key, [])) for name, key in _KEYS.items()}
    good_done = sum(1 for n in range(goods) if f"g{n}" in ledger.done)
    good_ok = sum(1 for g in good if states[g] == "succeeded")
    print(f"[F7] starts per poison job {starts}; worker restarts={len(workers.killed)}")
    for name, info in infos.items():
        error = info.error or {}
        print(f"[F7] {name}: state={info.state} attempts={info.attempt} error={error.get('type')}")
    print(f"[F7] good jobs succeeded={good_ok}/{goods} ran={good_done} all_terminal_after_s={took:.1f}")
    assert all(info.state == "dead" for info in infos.values()), infos
    assert starts["raises"] == 3 and infos["raises"].attempt == 3  # exactly its attempts
    assert 1 <= starts["exits"] <= deliveries and (infos["exits"].error or {}).get("type") == "WorkerLost"
    for name in ("hangs", "hangs_in_process"):  # one attempt, stopped at its timeout
        assert (infos[name].error or {}).get("type") == "Timeout" and infos[name].attempt == 1, infos[name]
    # its two attempts, each a dead pool process, then dead-lettered
    assert infos["segfaults"].attempt == 2 and "pool process" in str(infos["segfaults"].error or {})
    assert good_ok == goods


_KEYS = {
    "raises": "p-raises",
    "exits": "p-exits",
    "hangs": "p-hangs",
    "hangs_in_process": "p-hproc",
    "segfaults": "p-segv",
}
