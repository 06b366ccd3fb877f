"""A testing kit for projects that use tqflow: run a flow or a job on a private real Redis with an
in-process worker, and assert what happened. With tqflow installed, pytest loads the fixtures below
(`tqflow.testing.plugin`, the `pytest11` entry point); see docs/testing.md.

    async def test_nightly(tqflow):
        run = await tqflow.run_flow("flows/nightly.tqflow", params={"day": "2026-12-01"})
        assert_run(run, jobs={"load": "succeeded"}, outputs={"rows": 3})

    async def test_resize(tqflow):
        assert await tqflow.run_job(resize, path="a.png", width=10) == 10
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis

from tqflow.compiler import compile_file
from tqflow.dsl.diagnostics import render_all
from tqflow.errors import UsageError
from tqflow.plan import Plan
from tqflow.plan.durations import Duration, to_ms
from tqflow.runtime import clock
from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import RunInfo
from tqflow.runtime.store.keys import scan_patterns
from tqflow.runtime.task import Call, Task
from tqflow.runtime.worker import Worker, WorkerSettings

R = TypeVar("R")


class MovableClock:
    """The runtime's clock (`tqflow.runtime.clock`), for a test to move: delays, retry backoffs, schedules,
    deadlines and timeouts of this process's workers and clients fire when the clock passes them, without
    waiting. Made by the `tqflow_clock` fixture (and `FlowTestEnv.clock`); put back to real time after the
    test. Workers in other processes (`tqrun worker`) keep their own clock."""

    def now_ms(self) -> int:
        """The runtime's now: milliseconds since the epoch, as the worker and the Lua scripts see it."""
        return clock.now_ms()

    @property
    def moved_ms(self) -> int:
        """How far the clock was moved, in milliseconds."""
        return clock.moved_ms()

    def advance(self, by: Duration) -> None:
        """Move the clock forward by `by` ("90s", "1h", seconds, a timedelta) at once; every wait of the
        runtime whose end that passes wakes (the promoter moves what fell due, the scheduler fires)."""
        clock.advance(to_ms(by, "advance") / 1000)

    def advance_to(self, when_ms: int) -> None:
        """Move the clock forward to the epoch milliseconds `when_ms` (a due time, a schedule's tick); a
        time already passed leaves it where it is."""
        clock.advance(max(0, when_ms - clock.now_ms()) / 1000)

    async def run_for(self, duration: Duration, step: Duration = "10s", settle: float = 0.02) -> None:
        """Move the clock forward by `duration` in steps of `step`, letting the runtime work for `settle`
        real seconds after each: a retry due in 5 minutes that fails again is rescheduled and fires again
        within one call, and a schedule's ticks fire one by one (a step longer than the scheduler's
        `tick_grace_ms` would make its ticks late, and the trigger's catch-up policy would decide)."""
        total, each = to_ms(duration, "duration"), to_ms(step, "step")
        if each <= 0:
            raise clock.ClockError(f"run_for: the step must be a positive duration, got {step!r}")
        moved = 0
        while moved < total:
            part = min(each, total - moved)
            clock.advance(part / 1000)
            moved += part
            await asyncio.sleep(settle)

    def reset(self) -> None:
        """Back to real time (done after each test by the fixture)."""
        clock.reset()


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """The URL of a Redis for tests: TQFLOW_TEST_REDIS_URL if set (each test gets its own namespace on
    it, nothing is flushed), else a private server started now and stopped after."""
    url = os.environ.get("TQFLOW_TEST_REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


class FlowTestEnv:
    """One test's tqflow: a client on its own namespace, the workers it started, helpers to run things.
    Made by the `tqflow` fixture; `close()` stops the workers and removes the namespace's keys."""

    def __init__(self, redis_url: str, namespace: str | None = None) -> None:
        self.redis_url = redis_url
        self.namespace = namespace or f"test-{uuid.uuid4().hex[:12]}"
        self.redis: Redis = connect(redis_url)
        self.client = Client(self.redis, self.namespace)
        self._workers: list[tuple[asyncio.Event, asyncio.Task[None], Redis]] = []
        self.clock = MovableClock()  # the runtime's clock, for the test to move (back to real time at close)

    async def start_worker(
        self,
        tasks: Mapping[str, Task[Any, Any]] | Sequence[Task[Any, Any]],
        **settings: Any,
    ) -> Worker:
        """An in-process worker for these tasks (WorkerSettings fields as keywords), stopped by close()."""
        registry = dict(tasks) if isinstance(tasks, Mapping) else {t.name: t for t in tasks}
        connection = connect(self.redis_url)
        # block_ms: an idle worker notices its stop at its next read; 100 ms (not 500) ends each test sooner
        worker = Worker(connection, registry, self.namespace, WorkerSettings(**{"block_ms": 100, **settings}))
        stop = asyncio.Event()
        self._workers.append((stop, asyncio.create_task(worker.run(stop)), connection))
        return worker

    async def run_flow(
        self,
        source: str | Path | Plan,
        flow: str | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        tasks: Mapping[str, Task[Any, Any]] | Sequence[Task[Any, Any]] | None = None,
        timeout: float = 30,
        **settings: Any,
    ) -> RunInfo:
        """Compile a `.tqflow` file (or take a Plan), deploy it, start a worker for its tasks (the
        modules the plan names, found beside the file, unless `tasks` is given) if none runs yet, start
        one run of `flow` (the only flow when there is one) and wait for it to end."""
        plan, folder = self._plan(source)
        name = flow or _only_flow(plan)
        await self.client.deploy(plan)
        if not self._workers:
            found = tasks if tasks is not None else load_tasks(plan.flows[name].modules, [folder])
            await self.start_worker(found, **settings)
        run_id = await self.client.start_run(name, params)
        return await self.client.wait(run_id, timeout=timeout)

    async def run_job(self, task: Task[Any, R] | Call[R], /, *, timeout: float = 30, **kwargs: Any) -> R:
        """Enqueue one job of `task` (keywords: its arguments and `Client.enqueue`'s options), start a
        worker for it if none runs yet, and return its result (JobFailed and the like as the client does)."""
        if not self._workers:
            await self.start_worker([task.task if isinstance(task, Call) else task])
        job_id = await self.client.enqueue(task, **kwargs)
        return await self.client.result(job_id, timeout=timeout)

    async def close(self) -> None:
        for stop, running, connection in self._workers:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running, 10)
            await connection.aclose()
        self._workers.clear()
        keys = [
            k
            for pattern in scan_patterns(self.namespace)
            async for k in self.redis.scan_iter(match=pattern, count=1000)
        ]
        for start in range(0, len(keys), 500):
            await self.redis.unlink(*keys[start : start + 500])
        await self.client.close()
        if self.clock.moved_ms:  # a test that moved `self.clock` leaves real time behind it
            self.clock.reset()

    @staticmethod
    def _plan(source: str | Path | Plan) -> tuple[Plan, Path]:
        if isinstance(source, Plan):
            return source, Path.cwd()
        result = compile_file(source)
        if result.plan is None:
            raise AssertionError(f"{source} does not compile:\n{render_all(result.diagnostics)}")
        return result.plan, Path(source).resolve().parent


@contextlib.asynccontextmanager
async def flow_test_env(redis_url: str) -> AsyncIterator[FlowTestEnv]:
    env = FlowTestEnv(redis_url)
    try:
        yield env
    finally:
        await env.close()


def assert_run(
    run: RunInfo,
    state: str = "succeeded",
    *,
    jobs: Mapping[str, str] | None = None,
    outputs: Mapping[str, Any] | None = None,
) -> None:
    """The run ended in `state`; the named jobs ended in theirs; its outputs are these (when given). The
    message shows every job's state and the first error, so a failing test says what went wrong."""
    states = {name: job.state for name, job in run.jobs.items()}
    errors = {name: job.error for name, job in run.jobs.items() if job.error}
    where = f"run {run.id} of {run.flow}: {run.state}; jobs {states}; errors {errors}"
    assert run.state == state, f"expected the run to be {state}: {where}"
    if jobs is not None:
        wrong = {
            name: states.get(name, "(no such job)") for name, want in jobs.items() if states.get(name) != want
        }
        assert not wrong, f"jobs not in the expected state {dict(jobs)}: {wrong}; {where}"
    if outputs is not None:
        assert run.outputs == dict(outputs), f"outputs {run.outputs} != {dict(outputs)}; {where}"


def _only_flow(plan: Plan) -> str:
    if len(plan.flows) != 1:
        raise UsageError(f"the plan has flows {sorted(plan.flows)}: name the one to run (flow=...)")
    return next(iter(plan.flows))


__all__ = ["FlowTestEnv", "MovableClock", "assert_run", "flow_test_env", "private_redis"]
