"""The index of deployed flows by event name (`{ns}:event:NAME`, runtime/deployments.py): deploy, rollback
and undeploy keep it, so `emit` reads only the flows that listen for the event, not every deployed flow;
flows deployed before the index existed are indexed on the first emit. Against a real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from tqflow.compiler import compile_source
from tqflow.dsl.source import Source
from tqflow.plan import Plan
from tqflow.runtime.client import Client

TASKS = "from tqflow.runtime import task\n\n\n@task\ndef note(text: str) -> str:\n    return text\n"


def plan(tmp_path: Path, name: str, events: list[str]) -> Plan:
    (tmp_path / "notes.py").write_text(TASKS)
    triggers = "".join(f'  schedule event "{e}"\n' for e in events)
    text = f'use notes as n\n\nflow {name} {{\n{triggers}  job a = n.note(text="{name}")\n}}\n'
    result = compile_source(Source(str(tmp_path / f"{name}.tqflow"), text))
    assert result.plan is not None, [d.message for d in result.diagnostics]
    return result.plan


async def members(redis: Redis, client: Client, event: str) -> set[str]:
    return {str(m) for m in await redis.smembers(client.keys.event_listeners(event))}


async def test_deploy_rollback_and_undeploy_keep_the_index(
    client: Client, redis: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.deploy(plan(tmp_path, "paid", ["order.paid", "order.any"]))
    await client.deploy(plan(tmp_path, "joined", ["user.new", "order.any"]))
    await client.deploy(plan(tmp_path, "quiet", []))
    assert await members(redis, client, "order.paid") == {"paid"}
    assert await members(redis, client, "order.any") == {"paid", "joined"}
    read: list[str] = []
    get = client.deployments.get

    async def counting(name: str, version: int | None = None):  # type: ignore[no-untyped-def]
        read.append(name)
        return await get(name, version)

    monkeypatch.setattr(client.deployments, "get", counting)
    runs = await client.emit("order.paid", {})
    assert [(r.flow, r.status) for r in runs] == [("paid", "started")]
    assert read == ["paid"]  # the other deployed flows were not read
    read.clear()
    assert await client.emit("nobody.listens", {}) == [] and read == []
    monkeypatch.undo()
    # a new version that listens for another event moves the flow in the index
    await client.deploy(plan(tmp_path, "paid", ["user.new"]))
    assert await members(redis, client, "order.paid") == set()
    assert await members(redis, client, "user.new") == {"paid", "joined"}
    assert await client.emit("order.paid", {}) == []
    # rolling back moves it back
    await client.deployments.rollback("paid")
    assert await members(redis, client, "order.paid") == {"paid"}
    assert await members(redis, client, "user.new") == {"joined"}
    # undeploying takes it out
    await client.undeploy("paid")
    assert await members(redis, client, "order.paid") == set()
    assert await members(redis, client, "order.any") == {"joined"}
    assert await client.emit("order.paid", {}) == []
    assert [r.flow for r in await client.emit("order.any", {})] == ["joined"]


async def test_flows_deployed_before_the_index_are_indexed_on_the_first_emit(
    client: Client, redis: Redis, tmp_path: Path
) -> None:
    await client.deploy(plan(tmp_path, "old", ["legacy.event"]))
    # as an older tqflow left it: the flow is deployed, the index and its marker do not exist
    await redis.delete(client.keys.event_listeners("legacy.event"), client.keys.events_indexed)
    await redis.hdel(client.keys.flow("old"), "events")
    runs = await client.emit("legacy.event", {})
    assert [(r.flow, r.status) for r in runs] == [("old", "started")]
    assert await members(redis, client, "legacy.event") == {"old"}
    assert await redis.exists(client.keys.events_indexed) == 1
