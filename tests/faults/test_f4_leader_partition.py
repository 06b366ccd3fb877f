"""F4 with the leader cut off: the worker that leads (and fires cron ticks) reaches Redis through a proxy
that stalls every byte for longer than the leader lease while Redis stays up, then heals. Unlike a SIGSTOP
(F6), the cut-off process keeps running: its timers fire and its fire and heartbeat calls wait in the
connection, to arrive when the bytes flow again. The other worker takes the lead; the late calls of the old
leader are fenced by its epoch: every (trigger, tick) fires exactly once, with no gap.

Slice: a 3 s cut in 6 s of ticks; `TQFLOW_FAULT_SCALE=full`: 3 cuts of 4 s in 40 s.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from harness import FULL, Workers, fault_plan, seeded
from proxy import Proxy

from tqflow.plan import CatchupPlan, TriggerPlan
from tqflow.runtime.client import Client
from tqflow.runtime.cluster.leader import current_leader
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys

pytestmark = pytest.mark.faults


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_f4_leader_cut_off_fires_every_tick_once(tmp_path: Path) -> None:
    rng = seeded("F4-leader")
    # slice: 2-3 s of ticks before the cut (was 3.5-5 s); the cut and the 3 s after it as before
    cuts, cut_s, seconds = (3, 4.0, 40.0) if FULL else (1, 3.0, 6.0)
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", extra_args=("--port", str(port), "--bind", "127.0.0.1"))
    server.start()
    proxy = Proxy(port)
    await proxy.start()
    direct = f"redis://127.0.0.1:{port}"
    redis = connect(direct)
    client = Client(redis, "f4l")
    keys = Keys("f4l")
    triggers = [
        TriggerPlan(
            name=f"every:{i}",
            kind="every",
            every_ms=1000,
            catchup=CatchupPlan(kind="all", within_ms=60_000),
            overlap="allow",
            params={"key": {"lit": f"t{i}"}, "ms": {"lit": 1}},
        )
        for i in range(5)
    ]
    plan = fault_plan()
    flow = plan.flows["fault"].model_copy(update={"triggers": triggers})
    workers = Workers(f"redis://127.0.0.1:{proxy.port}", "f4l", tmp_path / "ledger")
    workers.stderr = tmp_path / "workers.log"
    leaders: list[str] = []
    try:
        await client.deploy(plan.model_copy(update={"flows": {"fault": flow}}))
        cut_off = workers.start()  # through the proxy: it starts first and leads
        await workers.ready(redis, keys, 1)
        deadline = time.monotonic() + 20
        while await current_leader(redis, ClusterKeys(keys)) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        workers.redis_url = direct
        workers.start()
        await workers.ready(redis, keys, 2)
        started = time.time() * 1000
        began = time.monotonic()
        for _ in range(cuts):
            await asyncio.sleep(seconds / (cuts + 1) * rng.uniform(0.7, 1.0))
            leader = await current_leader(redis, ClusterKeys(keys))
            leaders.append(leader[0] if leader else "")
            proxy.stalled = True
            await asyncio.sleep(cut_s)
            leader = await current_leader(redis, ClusterKeys(keys))
            leaders.append(leader[0] if leader else "")
            proxy.stalled = False
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - began)) + 3.0)
        ticks: dict[str, list[int]] = {}
        for run in await redis.zrangebyscore(keys.runs, started - 1, "+inf"):
            trigger, tick = await redis.hmget(keys.run(run), "trigger", "tick")
            if trigger is not None:
                ticks.setdefault(str(trigger), []).append(int(str(tick)))
        alive = len(workers.alive())
        assert cut_off.poll() is None
    finally:
        workers.stop_all()
        await proxy.close()
        await redis.aclose()
        server.stop()
    duplicated = sum(len(v) - len(set(v)) for v in ticks.values())
    gaps = sum(len(set(range(min(v), max(v) + 1000, 1000)) - set(v)) for v in ticks.values() if v)
    total = sum(len(v) for v in ticks.values())
    # The cut-off worker leads at the first cut (it started first); once the lead has moved to the other
    # worker it stays there, so a later cut cuts off a follower: its ticks must still fire once each, and
    # only a cut of the leader must move the lead (a full run's 3 cuts asserted 3 moves, which no run
    # could give).
    pairs = list(zip(leaders[::2], leaders[1::2], strict=True))
    cut_leader = [(before, after) for before, after in pairs if before == leaders[0]]
    changed = sum(1 for before, after in cut_leader if before != after)
    print(
        f"[F4-leader] cuts={cuts}x{cut_s:.0f}s ticks={total} duplicated={duplicated} gaps={gaps}"
        f" leadership_moved={changed} of {len(cut_leader)} cuts while the cut-off worker led ({cuts} cuts)"
        f" workers_alive={alive}/2"
    )
    assert alive == 2 and len(ticks) == len(triggers)
    assert duplicated == 0 and gaps == 0
    assert cut_leader and changed == len(cut_leader)  # the other worker took the lead from a cut-off leader
