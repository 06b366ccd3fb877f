"""An idle worker woken by a job holds its next read until that job has ended (its first command's reply is
not held up behind a fetch in the same turn of Redis' loop), and never for longer than a short hold
(fetcher.WAKE_HOLD_S): a long job does not keep the worker from fetching the next one. After a wake by plain
lean jobs, the next read is the blocking read itself, not a fetch call (fetcher.DIRECT_READS), except for a
burst, which is fetched in batches, and for entries only a fetch starts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tqflow.runtime import task
from tqflow.runtime.client import Client
from tqflow.runtime.worker import fetcher

from helpers import WorkerFactory

ENDED: dict[str, float] = {}
STARTED: dict[str, float] = {}
RELEASE = asyncio.Event()


@task(name="wake.quick")
async def quick(tag: str) -> str:
    STARTED[tag] = time.monotonic()
    for _ in range(3):  # a body that awaits, as one that talks to Redis does: the fetch went out beside it
        await asyncio.sleep(0)
    ENDED[tag] = time.monotonic()
    return tag


@task(name="wake.long")
async def long(tag: str) -> str:
    STARTED[tag] = time.monotonic()
    await RELEASE.wait()
    ENDED[tag] = time.monotonic()
    return tag


TASKS: dict[str, Any] = {quick.name: quick, long.name: long}


async def idle(worker: Any) -> None:
    """Until the worker has made its groups and is blocked on the streams with nothing to do."""
    for _ in range(200):
        if worker.fetcher.streams and not worker.runner.handled():
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # past its first empty fetch, into the blocking read


async def test_a_woken_worker_fetches_again_only_after_the_quick_job_it_was_woken_for_ended(
    client: Client, start_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the hold's bound is the other test's: here it is long, so a loaded machine cannot end it first
    monkeypatch.setattr(fetcher, "WAKE_HOLD_S", 5.0)
    holds: list[float] = []
    hold = fetcher._hold_after_wake

    async def recorded_hold(handlers: list[asyncio.Task[None]]) -> None:
        holds.append(time.monotonic())
        await hold(handlers)

    monkeypatch.setattr(fetcher, "_hold_after_wake", recorded_hold)
    worker = await start_worker(TASKS, block_ms=2000)
    fetches: list[float] = []
    run = worker.context.scripts.run

    async def recorded(call: Any) -> Any:
        if call.name == "fetch":
            fetches.append(time.monotonic())
        return await run(call)

    block = worker.fetcher._block_for_work

    async def recorded_block(prefix: str) -> Any:
        fetches.append(time.monotonic())  # the next read after a wake by a plain job is a blocking read
        return await block(prefix)

    worker.context.scripts.run = recorded  # type: ignore[method-assign]
    worker.fetcher._block_for_work = recorded_block  # type: ignore[method-assign]
    for tries in range(3):  # a job queued while the worker was between its reads is fetched, not woken for
        await idle(worker)
        holds.clear()
        tag = f"a{tries}"
        job = await client.enqueue(quick, tag=tag)
        assert await client.result(job, timeout=5) == tag
        if holds:
            break
    assert holds, "the worker was never woken by the job"
    after = [at for at in fetches if at > holds[0]]
    assert after, "the worker read again after the wake"
    assert after[0] >= ENDED[tag], "the first read after the wake went out while the job was running"


async def test_a_long_job_holds_the_next_fetch_for_at_most_the_hold(
    client: Client, start_worker: WorkerFactory
) -> None:
    RELEASE.clear()
    worker = await start_worker(TASKS, block_ms=500)
    await idle(worker)
    first = await client.enqueue(long, tag="long")
    for _ in range(500):
        if "long" in STARTED:
            break
        await asyncio.sleep(0.001)
    # The second job is queued while the first runs: the worker is past its hold and fetches it, while
    # the first job still holds its slot.
    second = await client.enqueue(quick, tag="b")
    assert await client.result(second, timeout=5) == "b"
    assert "long" not in ENDED
    assert STARTED["b"] - STARTED["long"] < 1.0
    RELEASE.set()
    assert await client.result(first, timeout=5) == "long"


async def test_a_read_that_did_not_wait_holds_nothing(
    client: Client, start_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every read counts as one that came back at once (a back-to-back stream of jobs): no hold
    monkeypatch.setattr(fetcher, "IDLE_BEFORE_HOLD_S", 3600.0)
    holds: list[float] = []

    async def recorded_hold(handlers: list[asyncio.Task[None]]) -> None:
        holds.append(time.monotonic())

    monkeypatch.setattr(fetcher, "_hold_after_wake", recorded_hold)
    worker = await start_worker(TASKS, block_ms=2000)
    await idle(worker)
    job = await client.enqueue(quick, tag="c")
    assert await client.result(job, timeout=5) == "c"
    assert holds == []


async def idle_recorded(start_worker: WorkerFactory) -> tuple[list[str], list[int]]:
    """A worker started and idle; from then on its fetcher's fetch calls (their names) and blocking reads
    (the entries each returned), as they go."""
    worker = await start_worker(TASKS, block_ms=2000)
    await idle(worker)
    fetches: list[str] = []
    reads: list[int] = []
    run, block = worker.context.scripts.run, worker.fetcher._block_for_work

    async def recorded_run(call: Any) -> Any:
        if call.name == "fetch":
            fetches.append(call.name)
        return await run(call)

    async def recorded_block(prefix: str) -> Any:
        started, plain = await block(prefix)
        reads.append(len(started))
        return started, plain

    worker.context.scripts.run = recorded_run  # type: ignore[method-assign]
    worker.fetcher._block_for_work = recorded_block  # type: ignore[method-assign]
    return fetches, reads


async def test_a_worker_woken_by_plain_jobs_blocks_again_without_a_fetch_call(
    client: Client, start_worker: WorkerFactory
) -> None:
    fetches, reads = await idle_recorded(start_worker)
    for i in range(fetcher.DIRECT_READS - 1):  # one after the other, each waited for: the benchmark's loop
        job = await client.enqueue(quick, tag=f"d{i}")
        assert await client.result(job, timeout=5) == f"d{i}"
    assert fetches == [], "a fetch call went out between wakes by plain jobs"
    # the first job woke the read that was blocked before the recording began; the others woke reads made so
    assert sum(reads) == fetcher.DIRECT_READS - 2


async def test_a_burst_after_a_wake_is_fetched_in_batches(
    client: Client, start_worker: WorkerFactory
) -> None:
    fetches, reads = await idle_recorded(start_worker)
    jobs = await client.enqueue_many([quick.call(tag=f"b{i}") for i in range(60)])
    for i, job in enumerate(jobs):
        assert await client.result(job, timeout=10) == f"b{i}"
    # the wake and at most DIRECT_READS reads of one entry a stream, then fetch calls take the rest
    assert fetches, "the burst was read one blocking read at a time"
    assert sum(1 for got in reads if got) <= fetcher.DIRECT_READS + 1


async def test_an_entry_the_fetch_must_start_makes_the_next_read_a_fetch_call(
    client: Client, start_worker: WorkerFactory
) -> None:
    fetches, _reads = await idle_recorded(start_worker)
    fair = await client.enqueue(quick, tag="f", fair_key="acme")  # a `j` entry, fed by the fetch (fair.lua)
    assert await client.result(fair, timeout=5) == "f"
    for _ in range(200):
        if fetches:
            break
        await asyncio.sleep(0.01)
    assert fetches, "a fair-share job's wake was not followed by a fetch call"
