"""The Inspector reads runs, jobs, flows, queues, workers and the DLQ back from a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from tqflow.runtime.attempts import AttemptRecorder
from tqflow.runtime.client import Client
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.store import payloads
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.task import Task

from .conftest import watch_plan
from helpers import WorkerFactory


async def test_a_finished_run_reads_back_with_graph_attempts_and_dlq(
    client: Client,
    redis: Redis,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    await client.deploy(watch_plan())
    recorder = AttemptRecorder(redis, namespace)
    await start_worker(obs_tasks, hooks=[recorder], queues=["observe"], concurrency=4)
    good = await client.start_run("watch", {"ms": "20"})
    await asyncio.sleep(0.01)  # runs are listed by creation time in ms: keep the two apart
    bad = await client.start_run("broken")
    assert (await client.wait(good, 20)).state == "succeeded"
    assert (await client.wait(bad, 20)).state == "failed"
    await recorder.flush()
    inspector = Inspector(redis, namespace)

    run = await inspector.run(good)
    assert run.state == "succeeded" and run.flow == "watch" and run.version == 1
    assert [j.name for j in run.jobs] == ["first", "left", "right", "joined"]
    assert {(e.source, e.target, e.kind) for e in run.edges} == {
        ("first", "left", "data"),
        ("first", "right", "data"),
        ("left", "joined", "data"),
        ("right", "joined", "data"),
    }
    assert run.counts == {"succeeded": 4}
    assert {j.name: j.priority for j in run.jobs}["left"] == "high"

    failed = await inspector.run(bad)
    assert failed.counts == {"dead": 1, "skipped": 1}
    dead = await inspector.job(f"{bad}.bad")
    assert (
        dead.error is not None
        and "it broke" in dead.error["message"]
        and "Traceback" in dead.error["traceback"]
    )
    assert [(a.attempt, a.outcome, a.error_type) for a in dead.attempts] == [
        (1, "retry", "RuntimeError"),
        (2, "dead", "RuntimeError"),
    ]

    runs = await inspector.runs()
    assert [r.id for r in runs.items] == [bad, good] and runs.total == 2
    assert [r.id for r in (await inspector.runs(state="failed")).items] == [bad]
    assert [r.id for r in (await inspector.runs(flow="watch", limit=1)).items] == [good]
    page = await inspector.runs(limit=1)
    assert page.next_offset == 1 and [r.id for r in (await inspector.runs(offset=1)).items] == [good]

    dlq = await inspector.dlq()
    assert dlq.total == 1 and dlq.items[0].job.id == f"{bad}.bad"
    assert [j.id for j in (await inspector.jobs(state="dead")).items] == [f"{bad}.bad"]
    assert [j.name for j in (await inspector.jobs(run=good, limit=2, offset=1)).items] == ["left", "right"]

    flows = {f.name: f for f in await inspector.flows()}
    assert flows["watch"].current == 1 and flows["watch"].jobs == 4 and flows["watch"].queue == "observe"
    detail = await inspector.flow("watch")
    assert [v.version for v in detail.versions] == [1] and detail.plan["name"] == "watch"

    workers = await inspector.workers()
    (worker,) = workers
    assert (
        worker.queues == ["observe"] and worker.source == "registry" and worker.state in ("alive", "leader")
    )
    assert worker.info["concurrency"] == 4 and (worker.idle_ms or 0) < 5_000


async def test_queue_depth_by_priority_and_live_states(
    client: Client,
    redis: Redis,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    await client.deploy(watch_plan())
    runs = [await client.start_run("watch", {"ms": "400"}) for _ in range(3)]
    inspector = Inspector(redis, namespace)
    queues = await inspector.queues()
    (observe,) = queues.queues
    assert observe.queue == "observe" and observe.waiting == 3 and observe.running == 0
    assert [(lv.priority, lv.waiting) for lv in observe.levels if lv.waiting] == [("normal", 3)]
    await asyncio.sleep(0.02)
    assert (await inspector.queue("observe")).oldest_age_ms is not None
    queued = await inspector.jobs(state="queued", queue="observe")
    assert sorted(j.id for j in queued.items) == sorted(f"{r}.first" for r in runs)

    await start_worker(obs_tasks, queues=["observe"], concurrency=2)
    for _ in range(100):
        stats = await inspector.queue("observe")
        if stats.running == 2:
            break
        await asyncio.sleep(0.02)
    assert stats.running == 2 and stats.waiting == 1
    running = await inspector.jobs(state="running")
    assert len(running.items) == 2 and all(j.state == "running" and j.worker for j in running.items)


async def test_missing_things_raise_lookup_error(redis: Redis, namespace: str) -> None:
    inspector = Inspector(redis, namespace)
    for call in (inspector.run("nope"), inspector.job("nope.x"), inspector.flow("nope")):
        try:
            await call
        except LookupError:
            continue
        raise AssertionError("expected LookupError")
    assert (await inspector.runs()).items == [] and (await inspector.queues()).queues == []


class _Trap:
    """Unpickling this would create a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


async def test_the_inspector_never_unpickles_a_result(redis: Redis, namespace: str, tmp_path: Any) -> None:
    trap = tmp_path / "created-by-unpickling"
    settings = payloads.PayloadSettings(codec="pickle", signing_key=b"shared-secret")
    keys = Keys(namespace)
    await redis.hset(
        keys.job("j1"), mapping={"state": "succeeded", "result": payloads.encode(_Trap(str(trap)), settings)}
    )
    job = await Inspector(redis, namespace).job("j1")
    assert isinstance(job.result, str) and job.result.startswith("<unreadable result")
    assert not trap.exists()


async def test_a_fan_out_shows_its_children(
    client: Client,
    redis: Redis,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    await client.deploy(watch_plan())
    await start_worker(obs_tasks, queues=["observe"])
    run_id = await client.start_run("spread")
    assert (await client.wait(run_id, 20)).outputs == {"total": 6}
    inspector = Inspector(redis, namespace)
    each = {j.name: j for j in (await inspector.run(run_id)).jobs}["each"]
    assert (each.children, each.children_left, each.result) == (3, 0, [1, 2, 3])
    child = await inspector.job(f"{run_id}.each.2")
    assert child.state == "succeeded" and child.result == 3
    assert (child.run, child.flow) == (run_id, "spread")  # a fan-out item names its run and flow
    assert (await inspector.job(f"{run_id}.each.0")).run == run_id
