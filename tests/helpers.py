"""Small helpers shared by tests."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tqflow.compiler import compile_file
from tqflow.dsl.source import Source
from tqflow.plan import FlowPlan, JobPlan, Plan, TaskRef
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts
from tqflow.runtime.task import Task
from tqflow.runtime.worker import Worker

FLOWS = Path(__file__).parent / "flows"

# `await start_worker(tasks, hooks=[...], **WorkerSettings fields)` (the conftest fixture).
WorkerFactory = Callable[..., Awaitable[Worker]]


async def lean_stream(redis: Redis, namespace: str, queue: str, level: int) -> tuple[Keys, Scripts, str]:
    """The namespace's keys, its scripts and one queue level's stream, its consumer group made (the tests
    that hand-make lean entries and drive the scripts themselves)."""
    keys = Keys(namespace)
    stream = keys.stream(queue, level)
    with contextlib.suppress(ResponseError):  # the group exists
        await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
    return keys, Scripts(redis), stream


def plan_of(name: str) -> Plan:
    result = compile_file(FLOWS / name)
    assert result.plan is not None, [d.message for d in result.diagnostics]
    return result.plan


def sample_tasks() -> tuple[ModuleType, dict[str, Task[Any, Any]]]:
    tasks = load_tasks(["sample_tasks"], [FLOWS])
    return sys.modules["sample_tasks"], tasks


def source(text: str, name: str = "test.tqflow", folder: Path = FLOWS) -> Source:
    return Source(str(folder / name), text)


# Plans built in Python, as the compiler would emit them (the flow runtime tests).


def task_ref(name: str) -> TaskRef:
    module, _, function = name.rpartition(".")
    return TaskRef(name=name, module=module, function=function, signature_hash="test")


def job_plan(
    name: str,
    task: str,
    args: dict[str, Any],
    deps: Sequence[str] = (),
    *,
    queue: str = "default",
    **extra: Any,
) -> JobPlan:
    """A flow job calling `task` (`module.function`) that waits for and takes data from `deps`."""
    return JobPlan(
        name=name,
        task=task_ref(task),
        args=args,
        queue=queue,
        data_deps=list(deps),
        waits_for=list(deps),
        **extra,
    )


def plan_with(flow: FlowPlan) -> Plan:
    """A plan of this one flow."""
    return Plan(source="test", flows={flow.name: flow})
