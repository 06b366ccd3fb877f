"""F22: Redis away for longer than the workers' `dead_after`. Redis is SIGSTOPped (its clock runs on, so
every worker record and lease has expired by the time it answers again) while three worker processes run
long jobs; one of them is SIGKILLed during the outage. The leader must not judge the live workers dead
from a silence it shared: none of their jobs may be reclaimed or run twice; the dead worker's jobs still
run again, after a grace that lets the live ones heartbeat first.

The jobs hold until the test has seen the dead worker's jobs run again and one more `dead_after` of the
leader's passes, in which a live job reclaimed would show (they used to sleep through the outage and four
`dead_after`s, and the dead worker's jobs that long again after their recovery).

Slice by default; `TQFLOW_FAULT_SCALE=full pytest -m faults tests/faults/test_f22_long_outage.py -s`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from harness import FULL, Ledger, Workers, seeded
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tqflow.runtime.client import Client
from tqflow.runtime.cluster.contact import Contact
from tqflow.runtime.cluster.recovery import Reclaimer
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

pytestmark = pytest.mark.faults
DEAD_AFTER_S = 2.0  # fault_worker.py's
# Past every lease (3 s) and record (dead_after), and past the clients' 5 s socket timeout (their calls fail
# and reconnect). A shorter one, 3.5 s, answers the calls it held up late instead: before the leader's
# passes stopped on a held-up reply (test_f22_a_pass_held_up_by_an_outage_judges_nobody) it let the SIGSTOP
# case reclaim the dead worker's jobs 0.05-0.1 s after SIGCONT, without the grace; now 2.0-2.2 s after.
OUTAGE_S = 8.0
TERMINAL = ("succeeded", "dead", "cancelled", "skipped")


async def started(ledger_path: Path, count: int, timeout: float) -> Ledger:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ledger = Ledger.read(ledger_path)
        if len(ledger.starts) >= count:
            return ledger
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{count} jobs did not start within {timeout}s")


async def recovered(ledger_path: Path, keys: list[str], dead: set[int], timeout: float) -> None:
    """Until each of `keys` was started again by a worker not in `dead` (or `timeout`: the asserts say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        starts = Ledger.read(ledger_path).starts
        if all(any(pid not in dead for pid, _ in starts.get(k, [])) for k in keys):
            return
        await asyncio.sleep(0.1)


async def end_states(client: Client, ids: list[str], timeout: float) -> dict[str, str | None]:
    deadline = time.monotonic() + timeout
    states: dict[str, str | None] = {}
    while time.monotonic() < deadline:
        states = {i: (await client.job(i)).state for i in ids}
        if all(s in TERMINAL for s in states.values()):
            break
        await asyncio.sleep(0.2)
    return states


@pytest.mark.parametrize("outage", ["sigstop", "restart"])
async def test_f22_an_outage_longer_than_dead_after_reclaims_no_live_worker(
    outage: str, tmp_path: Path
) -> None:
    seeded(f"F22-{outage}")
    outage_s, rounds, per_worker = (OUTAGE_S, 3, 4) if FULL else (OUTAGE_S, 1, 3)
    hold_ms = 120_000  # a bound only: the jobs run until the test releases them (fault_tasks.hold)
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True, extra_args=("--appendfsync", "always"))
    server.start()
    assert server.process is not None
    redis = Redis.from_url(server.url, decode_responses=True, retry=Retry(NoBackoff(), 0))
    client = Client(redis, "f22")
    keys = Keys("f22")
    # room for the dead worker's jobs beside their own: its recovery is timed, not the queue
    workers = Workers(server.url, "f22", tmp_path / "ledger", extra=["--concurrency", str(2 * per_worker)])
    workers.stderr = tmp_path / "workers.log"
    jobs: dict[str, str] = {}
    doomed_pids: set[int] = set()
    resumed_at: dict[str, float] = {}  # the key of each job -> when Redis answered again in its round
    try:
        for round_ in range(rounds):
            procs = [workers.start() for _ in range(3)]
            await workers.ready(redis, keys, len(workers.alive()))
            keys_now = [f"r{round_}j{i}" for i in range(3 * per_worker)]
            release = tmp_path / f"release{round_}"
            for key in keys_now:
                job = await client.enqueue("fault_tasks.hold", key=key, release=str(release), max_ms=hold_ms)
                jobs[str(job)] = key
            ledger = await started(workers.ledger, len(jobs), timeout=30)
            doomed = next(
                p for p in procs if any(pid == p.pid for k in keys_now for pid, _ in ledger.starts[k])
            )
            await asyncio.sleep(0.3)  # a few heartbeats with everything running
            if outage == "sigstop":
                os.kill(server.process.pid, signal.SIGSTOP)
            else:
                server.process.kill()
                server.process.wait()
            try:
                await asyncio.sleep(0.5)
                workers.signal(doomed, signal.SIGKILL)  # a worker that truly dies during the outage
                doomed_pids.add(doomed.pid)
                await asyncio.sleep(outage_s - 0.5)
            finally:
                if outage == "sigstop":
                    os.kill(server.process.pid, signal.SIGCONT)
                else:
                    await asyncio.to_thread(server.start, 30)
            resumed = time.time()
            resumed_at.update(dict.fromkeys(keys_now, resumed))
            doomed_keys = [k for k in keys_now if any(pid == doomed.pid for pid, _ in ledger.starts[k])]
            await recovered(workers.ledger, doomed_keys, doomed_pids, timeout=60)
            # the leader has judged (its grace is over): one more dead_after of its passes, the live
            # jobs still running, in which a live worker's job reclaimed would start a second time
            await asyncio.sleep(DEAD_AFTER_S)
            release.touch()
            states = await end_states(client, list(jobs), timeout=60)
            for proc in workers.alive():
                workers.signal(proc, signal.SIGTERM)
            for proc in list(workers.procs.values()):
                await asyncio.to_thread(proc.wait, 30)
        ledger = Ledger.read(workers.ledger)
    finally:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
        workers.stop_all()
        await redis.aclose()
        server.stop()
    first_pid = {key: ledger.starts[key][0][0] for key in jobs.values()}
    live_jobs = [k for k, pid in first_pid.items() if pid not in doomed_pids]
    dead_jobs = [k for k, pid in first_pid.items() if pid in doomed_pids]
    reclaimed_live = [k for k in live_jobs if len(ledger.starts[k]) > 1]
    recovered_after = [
        min(at for pid, at in ledger.starts[k] if pid not in doomed_pids) - resumed_at[k]
        for k in dead_jobs
        if len(ledger.starts[k]) > 1
    ]
    not_succeeded = [j for j, s in states.items() if s != "succeeded"]
    twice = sum(len(ledger.done.get(k, [])) > 1 for k in jobs.values())
    print(
        f"[F22-{outage}] jobs={len(jobs)} outage_s={outage_s} rounds={rounds}"
        f" on_live_workers={len(live_jobs)}"
        f" reclaimed_from_live={len(reclaimed_live)} twice={twice}"
        f" on_killed_worker={len(dead_jobs)} recovered={len(recovered_after)}"
        f" recovered_s_after_outage={max(recovered_after, default=0):.1f} not_succeeded={len(not_succeeded)}"
        f" stale_refused={sum(ledger.stale.values())}"
    )
    assert dead_jobs, "the killed worker ran nothing: the test tested no recovery"
    assert reclaimed_live == [], reclaimed_live
    assert sum(ledger.stale.values()) == 0
    assert len(recovered_after) == len(dead_jobs)  # the dead worker's jobs still ran again
    # ... after the grace the leader keeps once it hears Redis again (dead_after; 0.2 s for the clocks)
    assert min(recovered_after) >= DEAD_AFTER_S - 0.2, recovered_after
    assert not not_succeeded, not_succeeded
    assert all(len(ledger.done.get(k, [])) == 1 for k in live_jobs)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_f22_recovery_judges_nobody_on_a_silence_it_shared(redis: Redis, namespace: str) -> None:
    """The race the process test leaves to chance, made certain: both workers' records and leases ran out
    while Redis was away (here: a record TTL shorter than the "outage"), and the leader's first pass comes
    before the live worker's first heartbeat. Real scripts, a real Reclaimer; only the contact's clock is
    injected. Before the fix the pass reclaimed both jobs."""
    keys, scripts = Keys(namespace), Scripts(redis)
    cluster = ClusterKeys(keys)
    settings = ClusterSettings(heartbeat_ms=250, dead_after_ms=2000)
    stream = keys.stream("default", 2)
    await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
    held: dict[str, str] = {}
    for worker in ("live", "gone"):
        job = await Client(redis, namespace).enqueue("t.noop", timeout=60)  # a job with a record
        [row] = await scripts.run(
            calls.fetch(keys, now_ms(), worker, f"tok-{worker}-", 60_000, 1, [(stream, 1)])
        )
        assert row[0] == str(job)
        held[worker] = str(job)
        # a record that outlives no outage: 300 ms (dead_after's part), and a lease as short
        await scripts.run(calls.heartbeat(cluster, now_ms(), worker, 300, 300, "{}", [str(job)]))
    await asyncio.sleep(0.5)  # the "outage": both records and leases are gone
    assert not await redis.exists(cluster.worker("live"))
    clock = FakeClock()
    contact = Contact(settings.dead_after_ms, settings.heartbeat_ms, clock)
    reclaimer = Reclaimer(
        redis, cluster, "leader", ["default"], settings, lambda: True, lambda: False, contact
    )
    clock.now += 5.0  # the leader's own heartbeats failed for 5 s
    assert not await reclaimer.once()  # it heard nothing for longer than a worker may be silent
    # a call sent before the outage and run after it (its `now` 8 s old) changes nothing either
    sent = int((await redis.time())[0]) * 1000 - 8000
    late = calls.reclaim(cluster, stream, now_ms(), 0, 10, "-", 5, 0, "leader", sent, 1000)
    assert (await scripts.run(late))[:4] == [0, 0, 0, 0]
    contact.heard()  # the leader's heartbeat reaches Redis again: grace for the others' heartbeats
    clock.now += 0.5
    await scripts.run(calls.heartbeat(cluster, now_ms(), "live", 2000, 3000, "{}", [held["live"]]))
    assert not await reclaimer.once()  # still within the grace
    for _ in range(8):  # the leader's heartbeats every 250 ms, through the grace
        clock.now += 0.25
        contact.heard()
    counts = await reclaimer.once()
    assert counts.reclaimed == 1  # the worker that stayed silent after Redis came back
    states = {w: await redis.hmget(keys.job(j), "state", "worker") for w, j in held.items()}
    assert states == {"live": ["running", "live"], "gone": ["queued", ""]}, states


@pytest.mark.parametrize("held_up", ["read_clock", "all_streams"])
async def test_f22_a_pass_held_up_by_an_outage_judges_nobody(
    redis: Redis, namespace: str, held_up: str
) -> None:
    """The leader's pass checked its contact before the outage (all well then) and one of its calls was
    held up by it: Redis answers after every record and lease ran out, and before the leader's own
    heartbeat reply starts the grace. Its later calls would carry a fresh `sent` (the clock reading is
    extrapolated), so the scripts' age check cannot refuse them: the pass itself must stop. Before the
    fix it reclaimed the live worker's job."""
    keys, scripts = Keys(namespace), Scripts(redis)
    cluster = ClusterKeys(keys)
    settings = ClusterSettings(heartbeat_ms=250, dead_after_ms=1000)  # a pass may wait 1 s on a reply
    stream = keys.stream("default", 2)
    await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
    job = await Client(redis, namespace).enqueue("t.noop", timeout=60)
    [row] = await scripts.run(calls.fetch(keys, now_ms(), "live", "tok-live-", 60_000, 1, [(stream, 1)]))
    assert row[0] == str(job)
    await scripts.run(calls.heartbeat(cluster, now_ms(), "live", 300, 300, "{}", [str(job)]))
    await asyncio.sleep(0.5)  # the outage: the live worker's record and lease are gone
    assert not await redis.exists(cluster.worker("live"))
    contact = Contact(settings.dead_after_ms, settings.heartbeat_ms, FakeClock())  # heard from just now
    reclaimer = Reclaimer(
        redis, cluster, "leader", ["default"], settings, lambda: True, lambda: False, contact
    )
    step = getattr(reclaimer, held_up)

    async def late() -> object:
        await asyncio.sleep(1.2)  # the reply comes once Redis is back
        return await step()

    setattr(reclaimer, held_up, late)
    assert not await reclaimer.once()
    assert await redis.hmget(keys.job(str(job)), "state", "worker") == ["running", "live"]
    setattr(reclaimer, held_up, step)  # a pass that nothing held up judges as before
    assert (await reclaimer.once()).reclaimed == 1
