"""The failover under load that tests/topology/test_failover.py (a Redis Cluster) and
test_failover_sentinel.py (a Sentinel set) run; two files so the two xdist processes can take one each.

Failovers under load: the master that holds the namespace is SIGKILLed while jobs are enqueued and
run; its replica is promoted (by the cluster, or by the sentinels). Counted from a ledger outside Redis
(tests/faults): no acknowledged job lost, no worker stuck (every worker starts attempts after the
failover), nothing left pending. Replication is asynchronous: a job acknowledged in the last moment
before the kill may not have reached the replica (docs/guarantees.md says so); such a job is counted apart,
and only jobs acknowledged within REPLICATION_WINDOW_S before the kill may be lost that way."""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tqflow.errors import JobNotFound
from tqflow.runtime.client import Client
from tqflow.runtime.replication import NotReplicated
from tqflow.runtime.servers import ServerProcess

sys.path.insert(0, str(Path(__file__).parents[1] / "faults"))
from harness import Ledger, Workers, check

# 4 s of submissions (6 before): the kill at 1.3 s, the promotion 2-4 s later, batches on either side
JOBS, SECONDS, WORKERS = 600, 4.0, 3
REPLICATION_WINDOW_S = (
    1.0  # how far before the kill an acknowledged write may still be missing on the replica
)


async def submit_jobs(
    client: Client,
    total: int,
    seconds: float,
    rng: random.Random,
    acked: dict[str, float],
    unconfirmed: set[str] | None = None,
    per_second: int = 4,
) -> dict[str, str]:
    """Enqueue `total` lean jobs (keys j0…) in batches spread over `seconds`; returns id -> key. An id is
    acknowledged once enqueue_many returned it (`acked`: id -> monotonic time of that). With
    `?wait_replicas=1`, a batch the replicas did not confirm (NotReplicated: after the failover no replica
    is left) is queued but unconfirmed: its ids go to `unconfirmed`, not `acked`."""
    jobs: dict[str, str] = {}
    batches = max(1, int(seconds * per_second))
    for batch in range(batches):
        size = total // batches + (1 if batch < total % batches else 0)
        keys = [f"j{len(jobs) + i}" for i in range(size)]
        calls = [("fault_tasks.work", {"key": k, "ms": rng.randint(20, 200)}) for k in keys]
        try:
            ids = [str(i) for i in await client.enqueue_many(calls)]
        except NotReplicated as err:
            assert unconfirmed is not None and len(err.ids) == len(keys), err
            jobs.update(zip(err.ids, keys, strict=True))
            unconfirmed.update(err.ids)
        else:
            jobs.update(zip(ids, keys, strict=True))
            acked.update(dict.fromkeys(ids, time.monotonic()))
        await asyncio.sleep(seconds / batches)
    return jobs


async def state_of(client: Client, job_id: str) -> str:
    try:
        return (await client.job(job_id)).state
    except JobNotFound:
        return "missing"  # its record or entry is not on the (new) master


async def end_states(client: Client, ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {i: await state_of(client, i) for i in ids}
        if all(s in ("succeeded", "dead", "cancelled", "skipped", "missing") for s in states.values()):
            break
        await asyncio.sleep(0.2)
    return states


async def failover_under_load(
    url: str,
    namespace: str,
    tmp_path: Path,
    master: Callable[[], ServerProcess],
    label: str,
    wait_replicas: bool = False,
) -> None:
    """`wait_replicas`: the producer submits with `?wait_replicas=1`; then no acknowledged job may be lost,
    not even one acknowledged just before the kill."""
    rng = random.Random(int(uuid.uuid4().hex[:8], 16))
    client = Client.from_url(
        url + ("?wait_replicas=1&wait_timeout_ms=1000" if wait_replicas else ""), namespace
    )
    unconfirmed: set[str] = set()
    workers = Workers(url, namespace, tmp_path / "ledger", stderr=tmp_path / "workers.err")
    try:
        for _ in range(WORKERS):
            workers.start()
        await workers.ready(client.redis, client.keys, WORKERS)
        acked: dict[str, float] = {}
        # With wait_replicas every batch sent after the promotion waits out wait_timeout_ms (no replica is
        # left): 1 batch a second, not 4, and a 1 s timeout (a local replica confirms in milliseconds)
        # make that ~2 waits of 1 s (the case took ~53 s with 16 waits of 2 s, ~24 s with 4)
        per_second = 1 if wait_replicas else 4
        submitter = asyncio.create_task(
            submit_jobs(client, JOBS, SECONDS, rng, acked, unconfirmed, per_second)
        )
        await asyncio.sleep(SECONDS / 3)
        old = master()
        old.kill()
        killed = time.monotonic()
        killed_at = time.time()
        while await asyncio.to_thread(master) is old:  # until the replica is promoted
            assert time.monotonic() - killed < 50, "no replica was promoted within 50 s"
            await asyncio.sleep(0.05)
        promoted = time.monotonic() - killed
        jobs = await submitter
        submitted = time.monotonic() - killed
        states = await end_states(client, list(jobs), timeout=120)
        drained = time.monotonic() - killed
        unreplicated = {  # acknowledged by the old master just before it died, never replicated
            i
            for i, s in states.items()
            if s == "missing" and i in acked and killed - REPLICATION_WINDOW_S <= acked[i] <= killed + 0.5
        }
        if wait_replicas:  # an acknowledged job was on a replica: none may be missing
            assert unreplicated == set(), (
                f"acknowledged and replicated, then lost: {sorted(unreplicated)[:5]}"
            )
            unreplicated = {i for i in unconfirmed if states[i] == "missing"}  # never promised
        jobs = {i: k for i, k in jobs.items() if i not in unreplicated}
        ledger = Ledger.read(workers.ledger)
        figures = await check(client.redis, client.keys, jobs, ledger, workers.killed, states)
        pids = {p.pid for p in workers.procs.values()}
        working_after = {pid for pid, at in ledger.begins.values() if at > killed_at + promoted}
        alive = {p.pid for p in workers.alive()}
    finally:
        workers.stop_all()
        await client.close()
    print(
        f"\n[{label}] {figures.line()} promoted_after_s={promoted:.1f} submitted_after_s={submitted:.1f} "
        f"drained_after_s={drained:.1f} "
        f"workers={len(pids)} alive={len(alive)} working_after_failover={len(working_after & pids)} "
        f"lost_to_async_replication={len(unreplicated)} unconfirmed={len(unconfirmed)}"
    )
    assert figures.lost == 0 and figures.pending_left == 0, figures
    assert alive == pids, "a worker exited"
    assert working_after >= pids, f"stuck workers: {pids - working_after}"
