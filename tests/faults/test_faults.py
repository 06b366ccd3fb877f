"""Fault injection with real worker processes (RELIABILITY.md F1, F2, F3, F6).

By default each test runs a scaled-down slice (seconds); `TQFLOW_FAULT_SCALE=full pytest -m faults
tests/faults -s` runs the sizes of RELIABILITY.md and prints the figures docs/guarantees.md quotes.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import time
from pathlib import Path

import pytest
from harness import FULL, Ledger, Workers, check, fault_plan, restart_delays, seeded, submit, wait_all
from redis.asyncio import Redis

from tqflow.plan import CatchupPlan, TriggerPlan
from tqflow.runtime.client import Client
from tqflow.runtime.cluster.leader import current_leader
from tqflow.runtime.store.cluster_keys import ClusterKeys

pytestmark = pytest.mark.faults


async def submit_over(
    client: Client, total: int, seconds: float, rng: random.Random, ms: tuple[int, int] = (5, 40)
) -> dict[str, str]:
    """Submit `total` jobs spread over `seconds`, so faults hit them at every stage."""
    runs: dict[str, str] = {}
    batches = max(1, int(seconds * 4))
    for batch in range(batches):
        size = total // batches + (1 if batch < total % batches else 0)
        runs.update(await submit(client, size, rng, ms, first=len(runs)))
        await asyncio.sleep(seconds / batches)
    return runs


async def test_f1_sigkill_churn(client: Client, redis: Redis, redis_url: str, tmp_path: Path) -> None:
    rng = seeded("F1")
    jobs, every, duration, size = (10_000, 2.0, 30.0, 4) if FULL else (500, 1.0, 4.0, 3)
    await client.deploy(fault_plan())
    workers = Workers(redis_url, client.keys.namespace, tmp_path / "ledger")
    try:
        for _ in range(size):
            workers.start()
        await workers.ready(redis, client.keys, size)
        submitter = asyncio.create_task(submit_over(client, jobs, duration, rng, (20, 200)))
        last_kill, kill_wall = time.monotonic(), time.time()
        began = time.monotonic()
        # Kill for `duration`, and on while jobs are still being submitted (a slow machine submits slowly).
        while time.monotonic() - began < duration or (FULL and not submitter.done()):
            await asyncio.sleep(every)
            victim = rng.choice(workers.alive())
            workers.signal(victim, signal.SIGKILL)  # a supervisor restarts it
            last_kill, kill_wall = time.monotonic(), time.time()
            workers.start()
        runs = await submitter
        last_event = max(last_kill, time.monotonic())  # the last kill, or the last submission if later
        finished = await wait_all(redis, client.keys, runs, timeout=120)
        ledger = Ledger.read(workers.ledger)
        figures = await check(redis, client.keys, runs, ledger, workers.killed)
    finally:
        workers.stop_all()
    slowest = max(ledger.done.items(), key=lambda item: max(at for _, at in item[1]))
    print(f"[F1] last done: {slowest} starts={ledger.starts.get(slowest[0])} last_kill={kill_wall:.3f}")
    recovered = finished - last_event
    delays = sorted(restart_delays(ledger, workers.signalled))
    median = delays[len(delays) // 2] if delays else 0.0
    print(
        f"[F1] {figures.line()} all_done_after_last_kill_s={recovered:.2f} kills={len(workers.killed)} "
        f"rerun_after_kill_s_median={median:.2f} max={max(delays, default=0.0):.2f}"
    )
    assert figures.lost == 0 and figures.duplicates_not_from_killed == 0, figures
    assert figures.commits_duplicated == 0 and figures.pending_left == 0, figures
    assert recovered < 3.0 + 12.0  # the worker lease (3 s) + the backlog on a busy 2-core machine


async def test_f2_rolling_sigterm(client: Client, redis: Redis, redis_url: str, tmp_path: Path) -> None:
    rng = seeded("F2")
    # Below the cluster's capacity, so a handed-back job does not queue behind a backlog.
    jobs, rounds, size = (600, 10, 4) if FULL else (60, 3, 3)
    await client.deploy(fault_plan())
    grace = 0.5
    workers = Workers(redis_url, client.keys.namespace, tmp_path / "ledger", extra=["--grace", str(grace)])
    terminated: dict[int, float] = {}
    try:
        for _ in range(size):
            workers.start()
        await workers.ready(redis, client.keys, size)
        submitter = asyncio.create_task(submit_over(client, jobs, rounds * 1.5, rng, (20, 1500)))
        for _ in range(rounds):  # a rolling update: start the new worker, then stop the oldest
            await asyncio.sleep(1.0)
            workers.start()
            await workers.ready(redis, client.keys, size + 1)
            victim = next(p for p in workers.alive() if p.pid not in terminated)
            workers.signal(victim, signal.SIGTERM)
            terminated[victim.pid] = time.time()
        runs = await submitter
        await wait_all(redis, client.keys, runs, timeout=120)
        ledger = Ledger.read(workers.ledger)
        figures = await check(redis, client.keys, runs, ledger, workers.killed)
        codes = [p.wait(10) for p in workers.procs.values() if p.pid in terminated]
    finally:
        workers.stop_all()
    handed = restart_gaps(ledger, terminated, grace)
    gap = max(handed, default=0.0)
    print(f"[F2] {figures.line()} handed_back={len(handed)} max_restart_s={gap:.2f} exit_codes={codes}")
    assert figures.lost == 0 and figures.duplicated == 0 and figures.commits_duplicated == 0, figures
    assert figures.pending_left == 0 and set(codes) == {0}, (figures, codes)
    assert gap < 2.5  # about a second on a busy 2-core machine, never a lease timeout


def restart_gaps(ledger: Ledger, terminated: dict[int, float], grace: float) -> list[float]:
    """For each job restarted after its worker was stopped: seconds from the end of the grace period
    to its next start elsewhere."""
    gaps = []
    for starts in ledger.starts.values():
        for (pid, _), (_, again) in itertools.pairwise(starts):
            if pid in terminated:
                gaps.append(max(0.0, again - (terminated[pid] + grace)))
    return gaps


async def test_f3_sigstop_past_the_lease(
    client: Client, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    rng = seeded("F3")
    jobs, lease = (64, 2000) if FULL else (16, 2000)
    await client.deploy(fault_plan())
    workers = Workers(redis_url, client.keys.namespace, tmp_path / "ledger", extra=["--lease", str(lease)])
    try:
        paused, _ = workers.start(), workers.start()
        await workers.ready(redis, client.keys, 2)
        runs = await submit(client, jobs, rng, (1500, 1500))
        while not any(pid == paused.pid for s in Ledger.read(workers.ledger).starts.values() for pid, _ in s):
            await asyncio.sleep(0.05)
        workers.signal(paused, signal.SIGSTOP)
        stopped_at = time.time()
        await asyncio.sleep(2 * lease / 1000)
        workers.signal(paused, signal.SIGCONT)
        await wait_all(redis, client.keys, runs, timeout=60)
        # Let the paused worker's late finishes arrive (and be refused): up to 15 s on a loaded machine.
        deadline = time.monotonic() + 15
        while True:
            ledger = Ledger.read(workers.ledger)
            late = paused_in_flight(ledger, paused.pid, stopped_at)
            if time.monotonic() > deadline or (late and sum(ledger.stale.values()) >= len(late)):
                break
            await asyncio.sleep(0.2)
        figures = await check(redis, client.keys, runs, ledger, {paused.pid})
    finally:
        workers.stop_all()
    # The attempts the paused worker had begun and not committed when it was stopped are void: none of them
    # may commit afterwards (the same process may run those jobs again later, as new attempts).
    in_flight = paused_in_flight(ledger, paused.pid, stopped_at)
    stale_commits = sum(1 for attempt in in_flight if attempt in ledger.committed)
    delays = restart_delays(ledger, {paused.pid: stopped_at})
    print(
        f"[F3] {figures.line()} paused_in_flight={len(in_flight)} stale_commits={stale_commits} "
        f"rerun_after_stop_s_max={max(delays, default=0.0):.2f}"
    )
    assert in_flight and stale_commits == 0
    # Fencing was exercised: late finishes arrived and were refused. (A resumed worker that already knows an
    # attempt is lost may drop it without sending a finish, so not every paused attempt sends one.)
    assert figures.stale_refused >= 1
    assert figures.lost == 0 and figures.commits_duplicated == 0 and figures.children_duplicated == 0, figures
    assert figures.pending_left == 0, figures


def paused_in_flight(ledger: Ledger, pid: int, stopped_at: float) -> set[str]:
    """Attempts the paused worker had begun and not committed when it was stopped."""
    return {
        attempt
        for attempt, (begun_by, at) in ledger.begins.items()
        if begun_by == pid and at < stopped_at and ledger.committed.get(attempt, stopped_at) >= stopped_at
    }


async def test_f6_leader_killed_during_cron_ticks(
    client: Client, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    rng = seeded("F6")
    duration, kill_every, count = (60.0, 20.0, 10) if FULL else (5.0, 2.0, 10)
    catchup = CatchupPlan(kind="all", within_ms=60_000)  # missed ticks are fired late, never dropped
    triggers = [
        TriggerPlan(
            name=f"every:{i}",
            kind="every",
            every_ms=1000,
            catchup=catchup,
            overlap="allow",
            params={"key": {"lit": f"t{i}"}, "ms": {"lit": 1}},
        )
        for i in range(count)
    ]
    plan = fault_plan()
    flow = plan.flows["fault"].model_copy(update={"triggers": triggers})
    await client.deploy(plan.model_copy(update={"flows": {"fault": flow}}))
    keys = ClusterKeys(client.keys)
    workers = Workers(redis_url, client.keys.namespace, tmp_path / "ledger")
    started = time.time() * 1000
    try:
        for _ in range(3):
            workers.start()
        await workers.ready(redis, client.keys, 3)
        await asyncio.sleep(1.0)
        stopped_once = False
        for _ in range(int(duration / kill_every)):
            await asyncio.sleep(kill_every * rng.uniform(0.7, 1.0))
            leader = await current_leader(redis, keys)
            victim = next((p for p in workers.alive() if leader and str(p.pid) in leader[0].split("-")), None)
            if victim is None:
                continue
            if not stopped_once:  # once: SIGSTOP the leader past its lease, then let it come back
                workers.signal(victim, signal.SIGSTOP)
                await asyncio.sleep(2.5)
                workers.signal(victim, signal.SIGCONT)
                stopped_once = True
                continue
            workers.signal(victim, signal.SIGKILL)
            workers.start()
        await asyncio.sleep(3.0)  # a new leader catches up what the last kill missed
        ticks = await fired(redis, client, started)
        trigger_state = [await redis.hgetall(keys.trigger("fault", t.name)) for t in triggers]
    finally:
        workers.stop_all()
    duplicated = sum(len(v) - len(set(v)) for v in ticks.values())
    gaps = sum(len(set(range(min(v), max(v) + 1000, 1000)) - set(v)) for v in ticks.values() if v)
    skipped = sum(int(t.get("skipped", 0)) for t in trigger_state)
    total = sum(len(v) for v in ticks.values())
    print(
        f"[F6] ticks={total} duplicated={duplicated} gaps={gaps} skipped={skipped} "
        f"kills={len(workers.killed)}"
    )
    assert len(ticks) == count and total >= count * (duration / 2)
    assert duplicated == 0 and gaps == 0 and skipped == 0


async def fired(redis: Redis, client: Client, since_ms: float) -> dict[str, list[int]]:
    ticks: dict[str, list[int]] = {}
    for run in await redis.zrangebyscore(client.keys.runs, since_ms - 1, "+inf"):
        trigger, tick = await redis.hmget(client.keys.run(run), "trigger", "tick")
        if trigger is not None:
            ticks.setdefault(str(trigger), []).append(int(str(tick)))
    return {name: sorted(v) for name, v in ticks.items()}
