"""F4: one worker cut off from Redis through a proxy for three leases, then slowed by latency
(RELIABILITY.md). Its jobs are reclaimed by the other worker; when the cut heals its late finishes are
refused (0 commits from a stale attempt); it reconnects by itself and works again; nothing is lost.

Slice by default; `TQFLOW_FAULT_SCALE=full pytest -m faults tests/faults/test_f4_partition.py -s`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from harness import FULL, Ledger, Workers, check, fault_plan, seeded, submit, wait_all
from proxy import Proxy

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.store.keys import Keys

pytestmark = pytest.mark.faults
LEASE_MS = 2000 if FULL else 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_f4_worker_cut_off_then_slow(tmp_path: Path) -> None:
    rng = seeded("F4")
    jobs, latency, slow_s = (600, 0.2, 10.0) if FULL else (120, 0.05, 3.0)
    cut_s = 3 * LEASE_MS / 1000
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", extra_args=("--port", str(port), "--bind", "127.0.0.1"))
    server.start()
    proxy = Proxy(port)
    await proxy.start()
    direct = f"redis://127.0.0.1:{port}"
    redis = connect(direct)
    client = Client(redis, "f4")
    keys = Keys("f4")
    workers = Workers(direct, "f4", tmp_path / "ledger", extra=["--lease", str(LEASE_MS)])
    workers.stderr = tmp_path / "workers.log"
    try:
        await client.deploy(fault_plan())
        workers.start()  # node1: direct
        workers.redis_url = f"redis://127.0.0.1:{proxy.port}"
        cut_off = workers.start()  # node2: through the proxy
        await workers.ready(redis, keys, 2)
        runs = await submit(client, jobs // 2, rng, (100, 400))
        await asyncio.sleep(0.5)  # the cut-off worker holds jobs in flight
        proxy.stalled = True
        workers.killed.add(cut_off.pid)  # it loses its leases: its in-flight attempts may run twice
        runs.update(await submit(client, jobs // 2, rng, (20, 100), first=jobs // 2))
        await asyncio.sleep(cut_s)
        proxy.stalled = False
        healed_at = time.monotonic()
        proxy.latency = latency
        await asyncio.sleep(slow_s)
        proxy.latency = 0.0
        more = await submit(client, 40, rng, (5, 20), first=jobs)
        runs.update(more)
        finished = await wait_all(redis, keys, runs, timeout=90)
        await asyncio.sleep(1.0)
        ledger = Ledger.read(workers.ledger)
        figures = await check(redis, keys, runs, ledger, workers.killed)
        stale_from_cut = sum(
            1 for key, (pid, _) in ledger.begins.items() if pid == cut_off.pid and key not in ledger.committed
        )
        after_heal = [at for key, (pid, at) in ledger.begins.items() if pid == cut_off.pid and at > 0]
        alive = cut_off.poll() is None
    finally:
        workers.stop_all()
        await proxy.close()
        await redis.aclose()
        server.stop()
    wall_heal = time.time() - (time.monotonic() - healed_at)
    resumed = [at - wall_heal for at in after_heal if at > wall_heal]
    print(
        f"[F4] {figures.line()} cut_s={cut_s:.1f} latency_ms={latency * 1000:.0f}"
        f" stale_attempts_of_cut_worker={stale_from_cut} cut_worker_alive={alive}"
        f" first_start_after_heal_s={min(resumed) if resumed else float('nan'):.2f}"
        f" all_done_after_heal_s={finished - healed_at:.1f}"
    )
    assert alive and figures.lost == 0 and figures.commits_duplicated == 0, figures
    assert figures.duplicates_not_from_killed == 0, figures
    assert figures.children_duplicated == 0 and figures.pending_left == 0, figures
    assert resumed, "the cut-off worker never started a job again"
