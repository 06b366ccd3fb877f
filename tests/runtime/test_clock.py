"""The runtime's clock, moved by a test (runtime/clock.py; `tqflow_clock` from tqflow.testing): delays,
retry backoffs, timeouts and deadlines fire when the clock passes them, against a real Redis, in real
seconds far shorter than the durations they stand for."""

from __future__ import annotations

import asyncio
import time

import pytest

from tqflow.runtime import clock
from tqflow.runtime.client import Client
from tqflow.runtime.jobs import JobFailed
from tqflow.runtime.policies import fixed
from tqflow.runtime.task import task
from tqflow.testing import FlowTestEnv, MovableClock

from helpers import WorkerFactory

CALLS: dict[str, int] = {}


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task(retry=fixed("10m", attempts=3))
def fails_twice(key: str) -> str:
    CALLS[key] = CALLS.get(key, 0) + 1
    if CALLS[key] < 3:
        raise RuntimeError(f"attempt {CALLS[key]} fails")
    return f"ok after {CALLS[key]}"


NAPS_STARTED: list[float] = []  # one entry per naps body that began (this process's workers)


@task
async def naps(seconds: float) -> str:
    NAPS_STARTED.append(seconds)
    await asyncio.sleep(seconds)  # real seconds: only the runtime's clock moves
    return "woke"


TASKS = {t.name: t for t in (add, fails_twice, naps)}
# A job running while the clock jumps past its lease could be taken back by lease recovery (docs/testing.md)
LONG_LEASE_MS = 4 * 3_600_000


async def state_of(client: Client, job_id: str, settle: float = 0.3) -> str:
    await asyncio.sleep(settle)  # the worker had time to act, had anything been due
    return (await client.job(job_id)).state


async def until_state(client: Client, job_id: str, state: str, timeout: float = 30) -> None:
    """Real seconds: a worker just started on a busy machine may take a while to fetch."""
    deadline = time.monotonic() + timeout
    while (await client.job(job_id)).state != state:
        assert time.monotonic() < deadline, f"job {job_id} never became {state}"
        await asyncio.sleep(0.02)


def test_advance_moves_now_and_only_forward(tqflow_clock: MovableClock) -> None:
    before_ms = int(time.time() * 1000)
    tqflow_clock.advance("1h")
    # independent of the clock's own arithmetic: the host's clock plus an hour, give or take the test's run
    assert 3_600_000 <= clock.now_ms() - before_ms < 3_600_000 + 1_000
    assert tqflow_clock.moved_ms == 3_600_000
    tqflow_clock.advance(1.5)
    assert tqflow_clock.moved_ms == 3_601_500
    with pytest.raises(ValueError, match="advance must not be negative"):
        tqflow_clock.advance(-1)
    with pytest.raises(ValueError, match="not a duration"):
        tqflow_clock.advance("soon")


async def test_waits_end_when_the_clock_passes_them_and_not_before(tqflow_clock: MovableClock) -> None:
    began = time.monotonic()
    sleeper = asyncio.create_task(clock.sleep(3600))
    event = asyncio.Event()
    waiter = asyncio.create_task(clock.wait(event, 3600))
    limited = asyncio.create_task(clock.within(asyncio.sleep(7200), 3600))
    await asyncio.sleep(0.05)
    tqflow_clock.advance("59m")
    await asyncio.sleep(0.05)
    assert not (sleeper.done() or waiter.done() or limited.done())
    tqflow_clock.advance("1m")
    await asyncio.wait_for(sleeper, 2)
    assert await asyncio.wait_for(waiter, 2) is False  # the time ran out; the event was never set
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limited, 2)
    assert time.monotonic() - began < 2
    assert await clock.within(asyncio.sleep(0, "fast"), 60) == "fast"


async def test_a_job_delayed_an_hour_runs_when_the_clock_passes_its_due_time(
    client: Client, start_worker: WorkerFactory, tqflow_clock: MovableClock
) -> None:
    await start_worker(TASKS)
    job = await client.enqueue(add, x=1, delay="1h")
    assert await state_of(client, job) == "scheduled"
    tqflow_clock.advance("59m")
    assert await state_of(client, job) == "scheduled"  # a minute early: still waiting
    tqflow_clock.advance("1m")
    assert await client.result(job, timeout=30) == 2


async def test_retries_ten_minutes_apart_run_without_waiting(
    client: Client, start_worker: WorkerFactory, tqflow_clock: MovableClock
) -> None:
    await start_worker(TASKS)
    key = client.keys.namespace
    job = await client.enqueue(fails_twice, key=key)
    deadline = time.monotonic() + 30
    while not (CALLS.get(key) == 1 and (await client.job(job)).state != "running"):
        assert time.monotonic() < deadline, "the first attempt never ended"
        await asyncio.sleep(0.02)
    tqflow_clock.advance("9m")
    assert await state_of(client, job) != "succeeded" and CALLS[key] == 1  # the backoff is not over
    await tqflow_clock.run_for("25m", step="1m")
    assert await client.result(job, timeout=30) == "ok after 3"
    assert (await client.job(job)).attempt == 3


async def test_a_timeout_of_an_hour_fires_when_the_clock_passes_it(
    client: Client, start_worker: WorkerFactory, tqflow_clock: MovableClock
) -> None:
    await start_worker(TASKS, lease_ms=LONG_LEASE_MS)
    began = len(NAPS_STARTED)
    job = await client.enqueue(naps, seconds=7200, timeout="1h")
    # the timeout counts from the task's start in the worker, which comes after the record says running
    # (on a cluster that gap let the first advance land before the timer began: CI of 2026-12-04)
    deadline = time.monotonic() + 30
    while len(NAPS_STARTED) == began:
        assert time.monotonic() < deadline, f"job {job} never started its body"
        await asyncio.sleep(0.02)
    tqflow_clock.advance("30m")
    assert await state_of(client, job) == "running"
    tqflow_clock.advance("30m")
    with pytest.raises(JobFailed) as failed:
        await client.result(job, timeout=30)
    assert (failed.value.error or {}).get("type") == "Timeout"


async def test_a_deadline_ends_a_running_job_when_the_clock_passes_it(
    client: Client, start_worker: WorkerFactory, tqflow_clock: MovableClock
) -> None:
    await start_worker(TASKS, lease_ms=LONG_LEASE_MS)
    job = await client.enqueue(naps, seconds=7200, deadline="2h")
    await until_state(client, job, "running")
    tqflow_clock.advance("2h")
    with pytest.raises(JobFailed) as failed:
        await client.result(job, timeout=30)
    assert (failed.value.error or {}).get("type") == "DeadlineExceeded"


async def test_the_kits_env_moves_the_clock_and_puts_it_back(tqflow: FlowTestEnv) -> None:
    await tqflow.start_worker([add])
    job = await tqflow.client.enqueue(add, x=2, delay="1d")
    assert await state_of(tqflow.client, job) == "scheduled"
    tqflow.clock.advance("1d")
    assert await tqflow.client.result(job, timeout=30) == 3
    await tqflow.close()
    assert clock.moved_ms() == 0  # real time again for the next test
