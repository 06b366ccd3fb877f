"""Event triggers against a real Redis: `schedule event "NAME" { params { p = event.field }; key … }` starts
a run for each event sent with Client.emit, `POST /api/events/{name}` or `tqc emit`; a `key` deduplicates
events within its window; a paused flow starts none; data its trigger cannot read starts nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tqflow.compiler import compile_file
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.client import Client
from tqflow.runtime.events import EventError
from tqflow.runtime.lifecycle import BackfillError
from tqflow.runtime.sync import SyncClient

from cli_runner import tqc
from helpers import FLOWS, WorkerFactory, sample_tasks


async def deploy(client: Client) -> dict[str, Any]:
    result = compile_file(FLOWS / "orders.tqflow")
    assert result.plan is not None, [d.message for d in result.diagnostics]
    await client.deploy(result.plan)
    return sample_tasks()[1]


async def test_an_event_starts_a_run_of_every_flow_listening(
    client: Client, start_worker: WorkerFactory
) -> None:
    await start_worker(await deploy(client))
    runs = await client.emit("order.paid", {"id": "o-1", "count": 3})
    assert sorted((r.flow, r.trigger, r.status) for r in runs) == [
        ("audit", "event:0", "started"),
        ("ship", "event:0", "started"),
    ]
    by_flow = {r.flow: r.run_id for r in runs}
    shipped = await client.wait(by_flow["ship"], 30)
    assert shipped.state == "succeeded" and shipped.params == {"order": "o-1", "items": 3}
    assert shipped.outputs == {"order": "o-1"}
    audited = await client.wait(by_flow["audit"], 30)
    assert audited.outputs == {"line": "paid o-1"}
    assert await client.emit("order.refunded", {"id": "o-1"}) == []  # nobody listens


async def test_a_key_deduplicates_events_within_its_window(client: Client, redis: Redis) -> None:
    await deploy(client)
    first = {r.flow: r for r in await client.emit("order.paid", {"id": "o-2", "count": 1})}
    again = {r.flow: r for r in await client.emit("order.paid", {"id": "o-2", "count": 9})}
    assert again["ship"].status == "duplicate" and again["ship"].run_id == first["ship"].run_id
    assert again["audit"].status == "started"  # no key: every event is a run
    other = {r.flow: r for r in await client.emit("order.paid", {"id": "o-3", "count": 1})}
    assert other["ship"].status == "started" and other["ship"].run_id != first["ship"].run_id
    ships = [run_id for run_id in await redis.zrange(client.keys.runs, 0, -1)
             if await redis.hget(client.keys.run(run_id), "flow") == "ship"]  # fmt: skip
    assert sorted(ships) == sorted([first["ship"].run_id, other["ship"].run_id])
    # the window (1h) is the marker's expiry
    marker_ttls = [
        await redis.pttl(k) async for k in redis.scan_iter(match=f"{{{client.keys.namespace}}}:evkey:*")
    ]
    assert len(marker_ttls) == 2 and all(3_500_000 < ttl <= 3_600_000 for ttl in marker_ttls)


async def test_concurrent_duplicates_start_one_run(client: Client) -> None:
    await deploy(client)
    replies = await asyncio.gather(*(client.emit("order.paid", {"id": "o-4", "count": 1}) for _ in range(20)))
    ship = [r for reply in replies for r in reply if r.flow == "ship"]
    assert sum(r.status == "started" for r in ship) == 1
    assert len({r.run_id for r in ship}) == 1


async def test_a_paused_flow_starts_no_run_and_bad_data_starts_nothing(client: Client) -> None:
    await deploy(client)
    await client.pause("audit")
    runs = {r.flow: r for r in await client.emit("order.paid", {"id": "o-5", "count": 2})}
    assert runs["audit"].status == "paused" and runs["ship"].status == "started"
    await client.unpause("audit")
    runs_before = await client.redis.zcard(client.keys.runs)
    with pytest.raises(EventError, match="cannot start a run of flow audit, schedule event:0: no field `id`"):
        await client.emit("order.paid", {"count": 2})  # no `id`: the first listener (by name) says so
    with pytest.raises(EventError, match="flow ship"):
        await client.emit("order.paid", {"id": "o-6", "count": "two"})  # `items` is an Int
    assert await client.redis.zcard(client.keys.runs) == runs_before  # audit could have: it did not start
    with pytest.raises(EventError, match="event name"):
        await client.emit("bad name", {})
    with pytest.raises(BackfillError, match="has no schedule to backfill"):  # an event has no ticks
        [i async for i in client.backfill("ship", 0, 3_600_000)]


async def test_events_from_the_api_the_cli_and_the_sync_client(
    client: Client, redis_url: str, namespace: str
) -> None:
    await deploy(client)
    app = create_app(ApiSettings(redis_url=redis_url, namespace=namespace))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        sent = await http.post("/api/events/order.paid", json={"id": "o-7", "count": 1})
        assert sent.status_code == 200
        assert sorted(r["flow"] for r in sent.json()) == ["audit", "ship"]
        assert {r["status"] for r in sent.json()} == {"started"}
        bad = await http.post("/api/events/order.paid", json={"count": 1})
        assert bad.status_code == 422 and "no field `id`" in bad.json()["detail"]
        assert (await http.post("/api/events/bad%20name", json={})).status_code == 422
    where = ("--redis", redis_url, "--namespace", namespace)
    cli = await asyncio.to_thread(tqc, "emit", "order.paid", "--data", '{"id": "o-7", "count": 1}', *where)
    assert cli.returncode == 0, cli.stderr
    assert "ship (event:0): duplicate of run" in cli.stdout and "audit (event:0): started run" in cli.stdout
    wrong = await asyncio.to_thread(tqc, "emit", "order.paid", "--data", "{id}", *where)
    assert wrong.returncode == 2 and "--data is not JSON" in wrong.stderr

    def send() -> list[str]:
        with SyncClient.from_url(redis_url, namespace=namespace) as sync:
            return sorted(r.status for r in sync.emit("order.paid", {"id": "o-8", "count": 1}))

    assert await asyncio.to_thread(send) == ["started", "started"]
