"""`enqueue(..., depends_on=[job ids])`: a standalone job waits for other jobs, runs once they succeeded,
is skipped when one did not (as a flow's data dependency), or with allow_failure runs once they ended
(as a flow's `after x.done`); from the Client, the SyncClient, POST /jobs and `tqc jobs submit`."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from redis.asyncio import Redis

from tqflow.runtime import catalog
from tqflow.runtime.client import Client
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.jobs import JobFailed, JobSkipped
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.sync import SyncClient

from cli_runner import Ran, tqc_on
from helpers import FLOWS, WorkerFactory, plan_of

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


def tqc(redis_url: str, namespace: str, *args: str) -> Ran:
    return tqc_on(redis_url, namespace, *args, path=[FLOWS])


async def times(redis: Redis, client: Client, job_id: str) -> tuple[int, int]:
    started, finished = await redis.hmget(client.keys.job(job_id), "started", "finished")  # type: ignore[misc]
    return int(started), int(finished)


async def test_a_dependent_runs_after_its_dependencies_succeed(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    first = await client.enqueue(jt.add, x=1)  # lean: its record is made when it gets a dependent
    slow = await client.enqueue(jt.sleeper, seconds=0.3)
    then = await client.enqueue(jt.add, x=10, depends_on=[first, slow])
    assert (await client.job(then)).state == "waiting"
    await start_worker(TASKS, concurrency=4)
    assert await client.result(then, timeout=10) == 11
    started, _ = await times(redis, client, then)
    for upstream in (first, slow):
        assert (await client.job(upstream)).state == "succeeded"
        assert started >= (await times(redis, client, upstream))[1]  # began after each had ended


async def test_a_failed_dependency_skips_the_chain_unless_failures_are_allowed(
    client: Client, start_worker: WorkerFactory
) -> None:
    doomed = await client.enqueue(jt.always_fails, message="no")
    skipped = await client.enqueue(jt.add, x=1, depends_on=[doomed])
    chain = [skipped]
    for _ in range(300):  # a long chain is skipped link by link without recursing
        chain.append(await client.enqueue(jt.add, x=1, depends_on=[chain[-1]]))
    regardless = await client.enqueue(jt.add, x=5, depends_on=[doomed], allow_failure=True)
    await start_worker(TASKS)
    with pytest.raises(JobFailed):
        await client.result(doomed, timeout=10)
    with pytest.raises(JobSkipped, match=rf"dependency {doomed} did not succeed \(dead\)"):
        await client.result(skipped, timeout=10)
    with pytest.raises(JobSkipped, match=rf"dependency {chain[-2]} did not succeed \(skipped\)"):
        await client.result(chain[-1], timeout=10)
    assert {(await client.job(j)).state for j in chain} == {"skipped"}
    assert await client.result(regardless, timeout=10) == 6


async def test_a_cancelled_dependency_skips_at_once(client: Client) -> None:
    later = await client.enqueue(jt.add, x=1, delay="1h")
    waiting = await client.enqueue(jt.add, x=2, depends_on=[later])
    assert await client.cancel(later) == "cancelled"
    info = await client.job(waiting)
    assert info.state == "skipped" and info.reason == f"dependency {later} did not succeed (cancelled)"
    # cancelling a waiting dependent ends it, and its own dependents follow
    other = await client.enqueue(jt.add, x=1, delay="1h")
    middle = await client.enqueue(jt.add, x=1, depends_on=[other])
    last = await client.enqueue(jt.add, x=1, depends_on=[middle])
    assert await client.cancel(middle) == "cancelled"
    assert (await client.job(last)).state == "skipped"
    assert (await client.job(other)).state == "scheduled"


async def test_dependencies_that_ended_already(client: Client, start_worker: WorkerFactory) -> None:
    await start_worker(TASKS)
    done = await client.enqueue(jt.add, x=1)
    dead = await client.enqueue(jt.always_fails, message="x")
    assert await client.result(done, timeout=10) == 2
    with pytest.raises(JobFailed):
        await client.result(dead, timeout=10)
    assert await client.result(await client.enqueue(jt.add, x=3, depends_on=[done]), timeout=10) == 4
    late = await client.enqueue(jt.add, x=3, depends_on=[done, dead])
    assert (await client.job(late)).state == "skipped"  # settled when it was sent
    delayed = await client.enqueue(jt.add, x=7, depends_on=[done], delay="300ms")
    assert (await client.job(delayed)).state == "scheduled"
    assert await client.result(delayed, timeout=10) == 8


async def test_bad_dependencies_are_refused_with_the_reason(client: Client) -> None:
    with pytest.raises(ValueError, match="dependency 0123456789abcdef does not exist"):
        await client.enqueue(jt.add, x=1, depends_on=["0123456789abcdef"])
    with pytest.raises(ValueError, match="depends_on is empty"):
        await client.enqueue(jt.add, x=1, depends_on=[])
    with pytest.raises(TypeError, match="a list of job ids, not one string"):
        await client.enqueue(jt.add, x=1, depends_on="0123456789abcdef")
    with pytest.raises(ValueError, match="braces"):
        await client.enqueue(jt.add, x=1, depends_on=["{other}x"])
    with pytest.raises(ValueError, match="allow_failure applies to depends_on"):
        await client.enqueue(jt.add, x=1, allow_failure=True)
    real = await client.enqueue(jt.add, x=1)
    results = await client.enqueue_many(
        [(jt.add, {"x": 1}, {"depends_on": [real]}), (jt.add, {"x": 2}, {"depends_on": ["gone.2.1-0"]})],
        atomic=False,
    )
    assert results[0].status == "ok" and (await client.job(results[0])).state == "waiting"
    assert results[1].status == "error" and results[1].detail == "dependency gone.2.1-0 does not exist"


async def test_the_sync_client_and_bulk_take_dependencies(
    client: Client, redis_url: str, namespace: str, start_worker: WorkerFactory
) -> None:
    def use() -> tuple[str, list[str], int]:
        with SyncClient.from_url(redis_url, namespace) as sync:
            first = sync.enqueue(jt.add, x=1)
            after = sync.enqueue_many([(jt.add, {"x": 2}), (jt.add, {"x": 3})], depends_on=[first])
            return first, after, sync.result(after[1], timeout=20)

    await start_worker(TASKS)
    first, after, result = await asyncio.to_thread(use)
    assert result == 4
    inspector = Inspector(client.redis, namespace)
    assert [(await inspector.job(j)).depends_on for j in after] == [[first], [first]]


async def test_post_jobs_and_tqc_take_dependencies(
    client: Client, redis: Redis, redis_url: str, namespace: str, api: httpx.AsyncClient
) -> None:
    # as a worker publishes its tasks (none runs here: the jobs stay waiting)
    await redis.hset(catalog.catalog_key(client.keys), jt.add.name, json.dumps(catalog.describe(jt.add)))
    first = await client.enqueue(jt.add, x=1, delay="1h")
    reply = await api.post(
        "/jobs", json={"task": jt.add.name, "kwargs": {"x": 2}, "depends_on": [first], "allow_failure": True}
    )
    assert reply.status_code == 201, reply.text
    shown = (await api.get(f"/jobs/{reply.json()['id']}")).json()
    assert (shown["state"], shown["depends_on"], shown["allow_failure"]) == ("waiting", [first], True)
    missing = await api.post("/jobs", json={"task": jt.add.name, "kwargs": {"x": 2}, "depends_on": ["nope1"]})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "depends_on"]
    assert "dependency nope1 does not exist" in missing.json()["detail"][0]["msg"]
    made = await asyncio.to_thread(
        tqc, redis_url, namespace, "jobs", "submit", jt.add.name, "-a", "x=3", "--depends-on", first
    )
    assert made.returncode == 0, made.stderr
    shown_cli = await asyncio.to_thread(tqc, redis_url, namespace, "jobs", "show", made.stdout.strip())
    assert "state     waiting" in shown_cli.stdout
    assert f"after     {first} (all must succeed)" in shown_cli.stdout, shown_cli.stdout
    refused = await asyncio.to_thread(
        tqc, redis_url, namespace, "jobs", "submit", jt.add.name, "-a", "x=1", "--depends-on", "nope1"
    )
    assert refused.returncode == 2 and "dependency nope1 does not exist" in refused.stderr


async def test_a_flow_job_can_be_a_dependency(client: Client, start_worker: WorkerFactory) -> None:
    tasks = {**TASKS, **load_tasks(["sample_tasks"], [FLOWS])}
    await client.deploy(plan_of("diamond.tqflow"))
    run_id = await client.start_run("diamond", {"n": 3})
    after_sum = await client.enqueue(jt.add, x=1, depends_on=[f"{run_id}.sum"])
    after_run = await client.enqueue(jt.add, x=2, depends_on=[f"{run_id}.joined", after_sum])
    assert (await client.job(after_run)).state == "waiting"
    await start_worker(tasks, concurrency=4)
    info = await client.wait(run_id, timeout=20)
    assert info.state == "succeeded"  # the run's own bookkeeping is untouched by its standalone dependents
    assert await client.result(after_run, timeout=10) == 3
    assert await client.result(after_sum, timeout=10) == 2


async def test_waiting_dependents_are_listed_with_state_waiting(
    client: Client, redis: Redis, redis_url: str, namespace: str, api: httpx.AsyncClient
) -> None:
    first = await client.enqueue(jt.add, x=1, delay="1h")
    a = await client.enqueue(jt.add, x=2, depends_on=[first])
    b = await client.enqueue(jt.add, x=3, queue="other", depends_on=[first])
    assert [j.id for j in await client.list_jobs(state="waiting")] == [a, b]  # oldest first
    assert [j.id for j in await client.list_jobs("other", "waiting")] == [b]
    assert {first, a, b} <= {j.id for j in await client.list_jobs()}  # every live state, waiting too
    page = (await api.get("/api/jobs", params={"state": "waiting"})).json()
    assert [(j["id"], j["state"], j["depends_on"]) for j in page["items"]] == [
        (a, "waiting", [first]),
        (b, "waiting", [first]),
    ]
    other = (await api.get("/api/jobs", params={"state": "waiting", "queue": "other"})).json()
    assert [j["id"] for j in other["items"]] == [b]
    listed = await asyncio.to_thread(
        tqc, redis_url, namespace, "jobs", "list", "--state", "waiting", "--json"
    )
    assert listed.returncode == 0, listed.stderr
    assert [(j["id"], j["state"]) for j in json.loads(listed.stdout)] == [(a, "waiting"), (b, "waiting")]
    # leaving the state leaves the list: a cancelled dependent, a skipped one
    assert await client.cancel(a) == "cancelled"
    assert [j.id for j in await client.list_jobs(state="waiting")] == [b]
    assert await client.cancel(first) == "cancelled"
    assert (await client.job(b)).state == "skipped"
    assert (await api.get("/api/jobs", params={"state": "waiting"})).json()["items"] == []
    empty = await asyncio.to_thread(tqc, redis_url, namespace, "jobs", "list", "--state", "waiting")
    assert empty.returncode == 0 and empty.stdout.strip() == "no jobs", empty.stdout
    assert await redis.zcard(client.keys.after_waiting) == 0  # nothing left behind in the index


async def test_released_dependents_leave_the_waiting_list(
    client: Client, start_worker: WorkerFactory
) -> None:
    first = await client.enqueue(jt.add, x=1)  # lean: released by the worker's finish
    then = await client.enqueue(jt.add, x=2, depends_on=[first])
    assert [j.id for j in await client.list_jobs(state="waiting")] == [then]
    await start_worker(TASKS)
    assert await client.result(then, timeout=10) == 3
    assert await client.list_jobs(state="waiting") == []


async def test_skipped_and_cancelled_jobs_are_kept_as_long_as_finished_ones(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    keys = client.keys
    # before any worker said how long: a day, the default --keep-results
    early = await client.enqueue(jt.add, x=1, delay="1h")
    await client.cancel(early)
    assert 86_400_000 - 60_000 < await redis.pttl(keys.job(early)) <= 86_400_000
    # a run's cancelled jobs go with the run (the leader's --keep-runs), not on their own (no worker yet)
    plan = plan_of("diamond.tqflow")
    await client.deploy(plan)
    names = list(plan.flows["diamond"].jobs)
    run_id = await client.start_run("diamond", {"n": 3})
    await client.cancel_run(run_id)
    states = {name: (await client.job(f"{run_id}.{name}")).state for name in names}
    assert set(states.values()) <= {"cancelled", "skipped"}, states
    assert [await redis.pttl(keys.job(f"{run_id}.{name}")) for name in names] == [-1] * len(names)
    keep_ms = 4000
    await start_worker(TASKS, result_ttl_ms=keep_ms)  # what `tqrun worker --keep-results 4s` sets
    doomed = await client.enqueue(jt.always_fails, message="no", retry=None)
    with pytest.raises(JobFailed):
        await client.result(doomed, timeout=10)
    ok = await client.enqueue(jt.add, x=1)
    assert await client.result(ok, timeout=10) == 2
    skipped = await client.enqueue(jt.add, x=1, depends_on=[doomed])  # skipped at once
    later = await client.enqueue(jt.add, x=1, delay="1h")
    skipped_later = await client.enqueue(jt.add, x=1, depends_on=[later])
    lean_idle = await client.enqueue(jt.add, x=1, queue="nobody-serves")  # a lean entry, no record yet
    waiting = await client.enqueue(jt.add, x=1, depends_on=[later])
    for job_id in (waiting, lean_idle, later):  # `later` skips `skipped_later` (released by cancel)
        assert await client.cancel(job_id) == "cancelled"
    assert (await client.job(skipped)).state == (await client.job(skipped_later)).state == "skipped"
    ended = [ok, skipped, skipped_later, later, lean_idle, waiting]
    for job_id in ended:
        assert 0 < await redis.pttl(keys.job(job_id)) <= keep_ms, job_id
    assert await redis.pttl(keys.job(doomed)) == -1  # dead-lettered: stays for the DLQ
    await asyncio.sleep(keep_ms / 1000 + 0.5)
    for job_id in ended:
        assert not await redis.exists(keys.job(job_id)), job_id
    assert (await client.job(doomed)).state == "dead"
