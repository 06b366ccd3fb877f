"""Shared by the cluster tests: the nap flow, its tasks, and a hand-made attempt of a "ghost" worker."""

from __future__ import annotations

import contextlib
import json
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tqflow.compiler import compile_file
from tqflow.plan import FlowPlan, Plan, TriggerPlan
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts
from tqflow.runtime.task import Task

FLOWS = Path(__file__).parent / "flows"


def nap_plan(*triggers: TriggerPlan) -> Plan:
    result = compile_file(FLOWS / "nap.tqflow")
    assert result.plan is not None, [d.message for d in result.diagnostics]
    if not triggers:
        return result.plan
    flow: FlowPlan = result.plan.flows["nap"].model_copy(update={"triggers": list(triggers)})
    return result.plan.model_copy(update={"flows": {"nap": flow}})


def nap_tasks() -> tuple[ModuleType, dict[str, Task[Any, Any]]]:
    tasks = load_tasks(["cluster_tasks"], [FLOWS])
    return sys.modules["cluster_tasks"], tasks


async def ghost_start(redis: Redis, keys: Keys, ghost: str, count: int = 1) -> list[tuple[str, str]]:
    """Read entries as consumer `ghost` and start their attempts as a worker that then dies (it never
    registers). Returns (job id, token) of each attempt."""
    streams = keys.streams("default")
    await create_groups(redis, keys)
    reply = await redis.xreadgroup(keys.group, ghost, dict.fromkeys(streams, ">"), count=count)
    scripts, attempts = Scripts(redis), []
    for stream, entries in reply:
        for entry_id, fields in entries:
            token = uuid.uuid4().hex
            job_id = fields.get("j", "")  # '' for a lean entry: the script finds its job from the entry
            raw = await scripts.run(
                calls.start(keys, now_ms(), job_id, stream, entry_id, ghost, token, 30_000)
            )
            assert raw, "the ghost's start was refused"
            attempts.append((str(raw[0]), str(raw[1])))  # a lean first attempt's token is its entry's
    return attempts


async def create_groups(redis: Redis, keys: Keys) -> None:
    for stream in keys.streams("default"):
        with contextlib.suppress(ResponseError):  # BUSYGROUP: there already
            await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)


async def finish_as(redis: Redis, keys: Keys, job_id: str, token: str) -> str:
    """A late `finish` from an attempt: what the worker would send when it comes back."""
    result = await Scripts(redis).run(
        calls.finish(keys, now_ms(), job_id, token, "succeeded", json.dumps("late"))
    )
    return str(result)


async def start_naps(client: Client, count: int, ms: int = 10, prefix: str = "n") -> list[str]:
    return [await client.start_run("nap", {"key": f"{prefix}{i}", "ms": str(ms)}) for i in range(count)]
