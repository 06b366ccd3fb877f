"""`client.schedule(task, cron=…, every=…, at=…)`: stored as a one-job flow and fired by the leader exactly
as a flow's schedule (each tick once, with two workers contending), listed and removed from the Client,
the SyncClient, the REST API and `tqc schedules`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from zoneinfo import ZoneInfo

import httpx
import pytest
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.cluster.schedule import ScheduleError
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import now_ms
from tqflow.runtime.schedules import ScheduleNotFound
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.sync import SyncClient
from tqflow.runtime.validation import ArgumentError

from cli_runner import Ran, tqc_on
from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above

FAST = ClusterSettings(heartbeat_ms=100, dead_after_ms=400, leader_lease_ms=600)


def tqc(redis_url: str, namespace: str, *args: str) -> Ran:
    return tqc_on(redis_url, namespace, *args, path=[FLOWS])


async def runs_of(redis: Redis, client: Client, flow: str) -> list[tuple[int, str]]:
    """(tick, run id) of every run the flow's trigger started, by tick."""
    found = []
    for run_id in await redis.zrange(client.keys.runs, 0, -1):
        name, tick = await redis.hmget(client.keys.run(str(run_id)), "flow", "tick")
        if name == flow and tick is not None:
            found.append((int(tick), str(run_id)))
    return sorted(found)


async def test_every_tick_fires_once_and_runs_the_task(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    made = await client.schedule(jt.add, every="1s", args={"x": 41}, name="answer")
    assert (made.name, made.flow, made.task, made.kind, made.every_ms) == (
        "answer",
        "schedule.answer",
        jt.add.name,
        "every",
        1000,
    )
    assert made.next_ms is not None and made.next_ms % 1000 == 0 and made.next_ms > now_ms() - 5
    for _ in range(2):  # two leaders contending: each tick still fires once
        await start_worker(TASKS, cluster=FAST)
    await asyncio.sleep(3.6)
    await client.unschedule("answer")
    ticks = await runs_of(redis, client, "schedule.answer")
    assert len(ticks) >= 2, ticks
    stamps = [t for t, _ in ticks]
    assert stamps == list(range(stamps[0], stamps[-1] + 1000, 1000)), stamps  # no gap, no duplicate
    for _, run_id in ticks:
        info = await client.wait(run_id, timeout=10)
        assert info.state == "succeeded" and info.jobs["job"].result == 42
    after = len(ticks)
    await asyncio.sleep(1.5)
    assert len(await runs_of(redis, client, "schedule.answer")) == after  # removed: no more ticks


def next_local(hour: int, zone: str, now: dt.datetime) -> int:
    """The next `hour`:00 wall-clock time in `zone` after `now` (an independent reference)."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    day = local.date()
    while True:
        candidate = dt.datetime(day.year, day.month, day.day, hour, tzinfo=tz)
        if candidate > now:
            return int(candidate.timestamp() * 1000)
        day += dt.timedelta(days=1)


async def test_cron_in_a_zone_list_replace_and_remove(client: Client, redis: Redis) -> None:
    before = dt.datetime.now(dt.UTC)
    made = await client.schedule(
        jt.add,
        cron="0 9 * * *",
        tz="America/New_York",
        args={"x": 1, "y": 2},
        catchup="last(2)",
        overlap="queue",
        on_dst_gap="skip",
        on_dst_repeat="both",
    )
    assert made.name == jt.add.name and made.version == 1
    assert made.next_ms == next_local(9, "America/New_York", before)
    assert (made.catchup, made.overlap, made.on_dst_gap, made.on_dst_repeat) == (
        "last(2)",
        "queue",
        "skip",
        "both",
    )
    _, plan = await client.flow(made.flow)
    assert plan.triggers[0].catchup.kind == "last" and plan.triggers[0].catchup.count == 2
    trigger_key = ClusterKeys(client.keys).trigger(made.flow, "tick")
    await redis.hset(trigger_key, "last", 12345)  # where the leader got to
    again = await client.schedule(jt.add, cron="30 9 * * *", tz="America/New_York", args={"x": 5})
    assert again.version == 2 and again.args == {"x": 5} and again.cron == "30 9 * * *"
    assert await redis.hget(trigger_key, "last") == "12345"  # a replaced schedule goes on from there
    assert [s.name for s in await client.schedules()] == [jt.add.name]
    await client.pause(made.flow)
    paused = await client.schedule_info(jt.add.name)
    assert paused.paused and paused.next_ms is None
    gone = await client.unschedule(jt.add.name)
    assert gone.version == 2 and await client.schedules() == []
    assert not await redis.exists(trigger_key)
    with pytest.raises(ScheduleNotFound, match=f"no schedule '{jt.add.name}'"):
        await client.schedule_info(jt.add.name)
    with pytest.raises(ScheduleNotFound):
        await client.unschedule(jt.add.name)


async def test_bad_schedules_say_what_is_wrong(client: Client) -> None:
    with pytest.raises(ValueError, match="exactly one of cron, every or at \\(got cron, every\\)"):
        await client.schedule(jt.add, cron="* * * * *", every="1m", args={"x": 1})
    with pytest.raises(ValueError, match="got none"):
        await client.schedule(jt.add, args={"x": 1})
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        await client.schedule(jt.add, cron="* * * * *", tz="Mars/Olympus", args={"x": 1})
    with pytest.raises(ScheduleError, match="invalid cron expression '61 \\* \\* \\* \\*'"):
        await client.schedule(jt.add, cron="61 * * * *", args={"x": 1})
    with pytest.raises(ScheduleError, match=r"cron '0 12 30 2 \*' can never fire: .*February has at most 29"):
        await client.schedule(jt.add, cron="0 12 30 2 *", args={"x": 1})  # accepted, never fired before
    with pytest.raises(ArgumentError):
        await client.schedule(jt.add, every="1h", args={"x": "not a number"})
    with pytest.raises(ArgumentError, match="x"):
        await client.schedule(jt.add, every="1h")  # x is required
    with pytest.raises(ValueError, match="catchup 'some' must be none, all, last\\(N\\)"):
        await client.schedule(jt.add, every="1h", args={"x": 1}, catchup="some")
    with pytest.raises(ValueError, match="schedule name 'a b'"):
        await client.schedule(jt.add, every="1h", args={"x": 1}, name="a b")
    with pytest.raises(ValueError, match="overlap 'never' is not one of skip, queue, allow"):
        await client.schedule(jt.add, every="1h", args={"x": 1}, overlap="never")
    assert await client.schedules() == []


async def test_the_sync_client_schedules(redis_url: str, namespace: str) -> None:
    def use() -> tuple[list[str], str]:
        with SyncClient.from_url(redis_url, namespace) as sync:
            made = sync.schedule("job_tasks.add", at="2099-01-01T00:00:00+00:00", args={"x": 1}, name="once")
            names = [s.name for s in sync.schedules()]
            sync.unschedule("once")
            return names, made.at or ""

    names, at = await asyncio.to_thread(use)
    assert names == ["once"] and at == "2099-01-01T00:00:00+00:00"


async def test_the_rest_api_and_tqc_manage_schedules(
    client: Client, redis_url: str, namespace: str, api: httpx.AsyncClient
) -> None:
    made = await api.post(
        "/api/schedules", json={"task": jt.add.name, "name": "nightly", "cron": "0 2 * * *", "args": {"x": 3}}
    )
    assert made.status_code == 201, made.text
    assert (made.json()["flow"], made.json()["args"]) == ("schedule.nightly", {"x": 3})
    bad = await api.post("/api/schedules", json={"task": jt.add.name, "cron": "nope", "args": {"x": 3}})
    assert bad.status_code == 422 and "invalid cron expression 'nope'" in bad.json()["detail"][0]["msg"]
    assert [s["name"] for s in (await api.get("/api/schedules")).json()] == ["nightly"]
    assert (await api.get("/api/schedules/nightly")).json()["cron"] == "0 2 * * *"
    assert (await api.get("/api/schedules/none-such")).status_code == 404

    added = await asyncio.to_thread(
        tqc,
        redis_url,
        namespace,
        "schedules",
        "add",
        jt.add.name,
        "--every",
        "1h",
        "-a",
        "x=7",
        "--name",
        "hourly",
    )
    assert added.returncode == 0, added.stderr
    assert "schedule  hourly (flow schedule.hourly, version 1)" in added.stdout
    assert "when      every 1h  catchup none" in added.stdout, added.stdout  # not `every 3600000 ms`
    listed = await asyncio.to_thread(tqc, redis_url, namespace, "schedules")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["hourly", "nightly"], listed.stdout
    shown = json.loads(
        (await asyncio.to_thread(tqc, redis_url, namespace, "schedules", "show", "hourly", "--json")).stdout
    )
    assert (shown["every_ms"], shown["args"]) == (3_600_000, {"x": 7})
    removed = await asyncio.to_thread(tqc, redis_url, namespace, "schedules", "remove", "hourly")
    assert removed.returncode == 0 and "removed schedule hourly" in removed.stdout
    missing = await asyncio.to_thread(tqc, redis_url, namespace, "schedules", "remove", "hourly")
    assert missing.returncode == 5 and "no schedule 'hourly'" in missing.stderr
    wrong = await asyncio.to_thread(tqc, redis_url, namespace, "schedules", "add", jt.add.name, "--cron", "x")
    assert wrong.returncode == 2 and "invalid cron expression 'x'" in wrong.stderr
    never = await asyncio.to_thread(
        tqc, redis_url, namespace, "schedules", "add", jt.add.name, "--cron", "0 0 31 4 *", "-a", "x=1"
    )
    assert never.returncode == 2 and "cron '0 0 31 4 *' can never fire" in never.stderr, never.stderr
    never_body = {"task": jt.add.name, "cron": "0 0 30 2 *", "args": {"x": 3}}
    refused = await api.post("/api/schedules", json=never_body)
    assert refused.status_code == 422 and "can never fire" in refused.json()["detail"][0]["msg"]
    assert (await api.delete("/api/schedules/nightly")).json()["name"] == "nightly"
    assert await client.schedules() == []
