"""Flow runs pinned to one partition of a namespace over a 3-master cluster (runtime/partitions.py
`RunPlaces`): a run's keys all live on its partition's master, whatever it does (fan-in, a sub-flow child,
a signal, a cancel, a resume); lookups route by the run's `pK:` id; listings gather over the partitions;
a cron tick's run is handed to its partition through the outbox exactly once (cluster/outbox.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot
from test_partitions import PARTITIONS, open_api, spread_namespace

from tqflow.compiler import compile_file, compile_source
from tqflow.plan import Plan
from tqflow.runtime.attempts import AttemptRecorder
from tqflow.runtime.client import Client
from tqflow.runtime.cluster import outbox
from tqflow.runtime.cluster.scheduler import Scheduler
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.connection import connect
from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.jobs import JobFailed
from tqflow.runtime.logging import JobLogHooks
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.servers import LocalCluster
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.worker import Worker, WorkerSettings

from cli_runner import tqc
from helpers import FLOWS, plan_of, source

APPROVAL = Path(__file__).parents[2] / "examples" / "approval"


def plans() -> tuple[Plan, Plan, Plan]:
    approval = compile_file(APPROVAL / "approval.tqflow").plan
    assert approval is not None
    return plan_of("diamond.tqflow"), plan_of("subflows.tqflow"), approval


def all_tasks() -> dict[str, Any]:
    return {
        **load_tasks(["sample_tasks", "subflow_tasks"], [FLOWS]),
        **load_tasks(["expenses"], [APPROVAL]),
    }


def keys_by_master(cluster: LocalCluster, namespace: str, needle: str) -> dict[int, set[str]]:
    """Every key of the namespace holding `needle`, by the port of the master holding it."""
    found: dict[int, set[str]] = {}
    for node in cluster.servers[: cluster.masters_count]:
        with node.client() as direct:
            hits = {str(k) for k in direct.scan_iter(match=f"{{{namespace}*") if needle in str(k)}
        if hits:
            found[node.port] = hits
    return found


async def run_worker(url: str, namespace: str, stop: asyncio.Event) -> None:
    redis = connect(url)
    try:
        worker = Worker(redis, all_tasks(), namespace, WorkerSettings(block_ms=100, concurrency=8))
        await worker.run(stop)
    finally:
        await redis.aclose()


async def test_a_run_in_partition_2_keeps_all_its_keys_on_that_master(cluster3: LocalCluster) -> None:
    namespace = spread_namespace(cluster3)
    client = Client.from_url(cluster3.url, namespace)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(cluster3.url, namespace, stop))
    try:
        await client.create_partitions(PARTITIONS)
        for plan in plans():
            await client.deploy(plan)
        # one client's runs go round robin: three in a row land in three partitions
        diamonds = [await client.start_run("diamond", {"n": 3}) for _ in range(PARTITIONS)]
        assert sorted(r.split(":")[0] for r in diamonds) == [f"p{k}" for k in range(PARTITIONS)]
        run = next(r for r in diamonds if r.startswith("p2:"))
        local = run.removeprefix("p2:")
        info = await client.wait(run, 60)
        assert info.state == "succeeded" and info.id == run and info.outputs["result"] is not None
        # a sub-flow's child run is made in its parent's partition
        nightly = await client.start_run("nightly", {"n": 4})
        done = await client.wait(nightly, 60)
        assert done.state == "succeeded", done.jobs
        child = done.jobs["sum"].child_run
        assert child.split(":")[0] == nightly.split(":")[0] and (await client.run_info(child)).parent_job
        # a signal, and a cancel and resume, reach a run by its id
        expense = await client.start_run("expense", {"claim": "c-1", "amount": 5})
        while not await client.waiting_signals(expense):
            await asyncio.sleep(0.05)
        [waiting] = await client.waiting_signals(expense)
        assert waiting.run_id == expense
        assert (
            await client.signal(expense, "approve", {"approved": True, "by": "ana"})
        ).status == "delivered"
        assert (await client.wait(expense, 60)).state == "succeeded"
        napping = await client.start_run("sleeper", {"seconds": 30.0})
        while (await client.run_info(napping)).jobs["nap"].state != "running":
            await asyncio.sleep(0.05)
        assert await client.cancel_run(napping) in ("cancelling", "cancelled")
        assert (await client.wait(napping, 60)).state == "cancelled"
        resumed = await client.resume(napping)
        assert resumed.run_id == napping and resumed.rerun >= 1
        assert (await client.run_info(napping)).state == "running"
        await client.cancel_run(napping)
        assert (await client.wait(napping, 60)).state == "cancelled"

        # every key of the run in partition 2 is on that partition's master, in its slot; none elsewhere
        home = cluster3.owner(key_slot(f"{{{namespace}.2}}".encode())).port
        where = keys_by_master(cluster3, namespace, local)
        assert list(where) == [home], where
        assert all(k.startswith(f"{{{namespace}.2}}:") for k in where[home])
        assert f"{{{namespace}.2}}:run:{local}" in where[home]
        assert any(f":job:{local}.src" in k for k in where[home])
        # and the control slot holds no run at all: its master keeps deploys, registry, leader
        control = cluster3.owner(key_slot(f"{{{namespace}}}".encode())).port
        with next(n for n in cluster3.servers if n.port == control).client() as direct:
            assert not [k for k in direct.scan_iter(match=f"{{{namespace}}}:run:*")]
            assert direct.zcard(f"{{{namespace}}}:runs") == 0

        # inspection gathers over the partitions: Python, REST, tqc
        inspector = Inspector(connect(cluster3.url), namespace)
        page = await inspector.runs(limit=50)
        ours = {*diamonds, nightly, child, expense, napping}
        assert {r.id for r in page.items} == ours and page.total == len(ours)
        created = [r.created for r in page.items]
        assert created == sorted(created, reverse=True)
        assert (await inspector.run(run)).jobs[0].id.startswith("p2:")
        two = await inspector.runs(limit=2, offset=1)
        assert [r.id for r in two.items] == [r.id for r in page.items[1:3]] and two.next_offset == 3
        await inspector.redis.aclose()
        http, _app = await open_api(cluster3.url, namespace)
        async with http:
            listed = (await http.get("/api/runs", params={"limit": 50})).json()
            assert {r["id"] for r in listed["items"]} == ours
            shown = (await http.get(f"/api/runs/{run}")).json()
            assert shown["id"] == run and shown["state"] == "succeeded"
            assert {j["id"] for j in shown["jobs"]} == {
                f"{run}.{n}" for n in ("src", "sum", "twice", "joined")
            }
        listed_cli = await asyncio.to_thread(
            tqc, "runs", "--json", "--redis", cluster3.url, "--namespace", namespace
        )
        assert {r["id"] for r in json.loads(listed_cli.stdout)["items"]} == ours
        status = await asyncio.to_thread(
            tqc, "status", run, "--redis", cluster3.url, "--namespace", namespace
        )
        assert status.returncode == 0 and f"run {run}" in status.stdout
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
        await client.close()


EVERY = """
use sample_tasks as t

flow ticking {
  schedule every 1h
  job one = t.source(n=2)
}
"""


async def test_a_cron_tick_hands_its_run_to_a_data_partition_once(
    cluster3: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = spread_namespace(cluster3)
    client = Client.from_url(cluster3.url, namespace)
    control = connect(cluster3.url)
    keys = ClusterKeys(Keys(namespace))
    try:
        await client.create_partitions(PARTITIONS)
        result = compile_source(source(EVERY))
        assert result.plan is not None, [d.message for d in result.diagnostics]
        await client.deploy(result.plan)
        version, flow = await client.flow("ticking")
        [trigger] = flow.triggers
        holder = "leader-1:1"
        await control.set(keys.leader, holder, px=60_000)  # this test plays the leader
        tick = 3_600_000 * 500_000

        # the leader dies between the two steps: the tick is taken and its run waits in the outbox
        first = Scheduler(control, keys, ClusterSettings(), lambda: holder)

        async def killed(*_: Any) -> str:
            raise ConnectionError("killed between the two steps")

        monkeypatch.setattr(outbox, "deliver", killed)
        with pytest.raises(ConnectionError):
            await first._fire(holder, flow, trigger, tick, "run", "", (version, flow))
        held = await control.hgetall(keys.outbox)
        [run_id] = list(held)
        assert run_id.split(":")[0] in {f"p{k}" for k in range(PARTITIONS)}
        assert await control.get(keys.tick("ticking", trigger.name, tick)) == run_id
        with pytest.raises(LookupError):
            await client.run_info(run_id)
        monkeypatch.undo()
        # the tick repeated (the same leader, or a new one) fires nothing more
        assert await first._fire(holder, flow, trigger, tick, "run", "", (version, flow)) is None
        assert list(await control.hgetall(keys.outbox)) == [run_id]

        # the next leader's pass sends what the outbox holds: the run is made in its partition
        second = Scheduler(control, keys, ClusterSettings(), lambda: holder)
        await second.once()
        assert await control.hlen(keys.outbox) == 0
        assert (await client.run_info(run_id)).state == "running"
        # killed after step 2, before the outbox field went: sent again, it finds the run made
        places = await second._places()
        await control.hset(keys.outbox, run_id, held[run_id])
        assert await outbox.deliver_all(control, keys, places) == 1
        assert await control.hlen(keys.outbox) == 0
        # exactly one run in the whole namespace, in the partition its id names
        k = int(run_id.split(":")[0][1:])
        counts = [await p.redis.zcard(p.keys.runs) for p in places.all]
        assert counts == [1 if i == k + 1 else 0 for i in range(PARTITIONS + 1)]
        assert await second.places.data[k].redis.hget(
            second.places.data[k].keys.run(run_id[3:]), "tick"
        ) == str(tick)

        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(cluster3.url, namespace, stop))
        try:
            assert (await client.wait(run_id, 60)).state == "succeeded"
        finally:
            stop.set()
            await asyncio.wait_for(worker, 30)
        await places.close()
        if first.places is not None:
            await first.places.close()
    finally:
        await control.aclose()
        await client.close()


class Seen:
    """A user's hook: what it was shown."""

    def __init__(self) -> None:
        self.started: list[AttemptEvent] = []
        self.ended: list[OutcomeEvent] = []

    def attempt_started(self, event: AttemptEvent) -> None:
        self.started.append(event)

    def attempt_finished(self, event: OutcomeEvent) -> None:
        self.ended.append(event)


async def test_hooks_logs_and_histories_name_a_partition_job_by_its_pk_id(
    cluster3: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = spread_namespace(cluster3)
    client = Client.from_url(cluster3.url, namespace)
    redis = connect(cluster3.url)
    seen = Seen()
    recorder = AttemptRecorder(redis, namespace)
    tasks = {**all_tasks(), **load_tasks(["job_tasks"], [FLOWS])}
    settings = WorkerSettings(block_ms=100, concurrency=4)
    worker = Worker(redis, tasks, namespace, settings, hooks=[seen, recorder, JobLogHooks()])
    stop = asyncio.Event()
    try:
        await client.create_partitions(PARTITIONS)
        await client.deploy(plan_of("diamond.tqflow"))
        running = asyncio.create_task(worker.run(stop))
        failing = await client.enqueue("job_tasks.always_fails", message="no")
        run = await client.start_run("diamond", {"n": 2})
        assert (await client.wait(run, 60)).state == "succeeded"
        with pytest.raises(JobFailed):
            await client.result(failing, timeout=60)
        stop.set()
        await asyncio.wait_for(running, 30)
        await recorder.close()
        # hooks see the ids callers know: the job's and the run's `pK:` ids
        ids = {e.job_id for e in seen.started}
        assert failing in ids and {f"{run}.{n}" for n in ("src", "sum", "twice", "joined")} <= ids
        assert {e.run_id for e in seen.started if e.run_id} == {run}
        assert all(e.attempt.job_id.startswith("p") for e in seen.ended)
        # the log lines too
        out = capsys.readouterr().out
        assert f"job={failing}" in out or f'"job": "{failing}"' in out, out[-2000:]
        # the attempt history is kept in the job's partition, where `tqc job` and the API read it
        info = await Inspector(redis, namespace).job(failing)
        assert [a.outcome for a in info.attempts] == ["retry", "retry", "dead"]
        part = int(failing.split(":")[0][1:])
        home = cluster3.owner(key_slot(f"{{{namespace}.{part}}}".encode()))
        with home.client() as direct:
            assert direct.llen(f"{{{namespace}.{part}}}:job:{failing.split(':', 1)[1]}:attempts") == 3
    finally:
        stop.set()
        await client.close()
        await redis.aclose()


async def test_keyed_events_and_backfills_find_their_runs_in_one_partition(cluster3: LocalCluster) -> None:
    namespace = spread_namespace(cluster3)
    client = Client.from_url(cluster3.url, namespace)
    other = Client.from_url(cluster3.url, namespace)
    try:
        await client.create_partitions(PARTITIONS)
        await client.deploy(plan_of("orders.tqflow"))
        # a keyed trigger's run goes to its key's partition: every producer's duplicate check is there
        first = {r.flow: r for r in await client.emit("order.paid", {"id": "o-2", "count": 1})}
        again = {r.flow: r for r in await other.emit("order.paid", {"id": "o-2", "count": 9})}
        assert first["ship"].status == "started" and first["ship"].run_id.startswith("p")
        assert again["ship"].status == "duplicate" and again["ship"].run_id == first["ship"].run_id
        assert again["audit"].status == "started" and again["audit"].run_id != first["audit"].run_id
        assert (await client.run_info(first["ship"].run_id)).params == {"order": "o-2", "items": 1}
        # a backfilled tick's run id is derived from the tick, so its partition is too: a repeat finds it
        result = compile_source(source(EVERY))
        assert result.plan is not None
        await client.deploy(result.plan)
        made = [b async for b in client.backfill("ticking", 0, 2 * 3_600_000, rate=1000)]
        redone = [b async for b in other.backfill("ticking", 0, 2 * 3_600_000, rate=1000)]
        assert [b.status for b in made] == ["started"] * 3
        assert [b.status for b in redone] == ["exists"] * 3  # the tick key names the same run
        assert [b.run_id for b in redone] == [b.run_id for b in made]
        assert [(await client.run_info(b.run_id)).state for b in made] == ["running"] * 3
    finally:
        await other.close()
        await client.close()
