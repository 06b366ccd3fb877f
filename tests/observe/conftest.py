"""Fixtures for the observability tests: their own flows and tasks (tests/observe/flows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tqflow.compiler import compile_file
from tqflow.compiler.plan import Plan
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.task import Task

OBS_FLOWS = Path(__file__).parent / "flows"
WATCH = OBS_FLOWS / "watch.tqflow"


def watch_plan() -> Plan:
    result = compile_file(WATCH)
    assert result.plan is not None, [d.message for d in result.diagnostics]
    return result.plan


@pytest.fixture
def obs_tasks() -> dict[str, Task[Any, Any]]:
    return load_tasks(["observe_tasks"], [OBS_FLOWS])
