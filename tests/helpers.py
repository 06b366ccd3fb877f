"""Small helpers shared by tests."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from tqflow.compiler import compile_file
from tqflow.dsl.source import Source
from tqflow.plan import Plan
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.task import Task
from tqflow.runtime.worker import Worker

FLOWS = Path(__file__).parent / "flows"

# `await start_worker(tasks, hooks=[...], **WorkerSettings fields)` (the conftest fixture).
WorkerFactory = Callable[..., Awaitable[Worker]]


def plan_of(name: str) -> Plan:
    result = compile_file(FLOWS / name)
    assert result.plan is not None, [d.message for d in result.diagnostics]
    return result.plan


def sample_tasks() -> tuple[ModuleType, dict[str, Task[Any, Any]]]:
    tasks = load_tasks(["sample_tasks"], [FLOWS])
    return sys.modules["sample_tasks"], tasks


def source(text: str, name: str = "test.tqflow", folder: Path = FLOWS) -> Source:
    return Source(str(folder / name), text)
