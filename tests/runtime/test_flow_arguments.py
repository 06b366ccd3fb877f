"""A flow job's arguments on the worker: a job whose arguments are all plain literals (the same every run)
takes them parsed once per plan job and needs no run environment; every other form (params, upstream
outputs, a `when`, a literal list) is evaluated a job, each job with its own objects. Against a real Redis
and a real worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tqflow.plan import FlowPlan, ParamPlan, Plan
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.worker import attempt as attempt_module

from helpers import WorkerFactory
from helpers import job_plan as job

TASKS = """from tqflow.runtime import task


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task
def grow(items, extra: int = 0) -> int:  # unannotated: the worker hands it the object itself
    items.append(extra)
    return len(items)
"""


def flow() -> Plan:
    jobs = {
        "lit": job("lit", "argtasks.add", {"x": {"lit": 1}, "y": {"lit": 2}}),
        "lst": job("lst", "argtasks.grow", {"items": {"lit": [1, 2]}}),
        "p": job("p", "argtasks.add", {"x": {"param": "n"}}),
        "w": job("w", "argtasks.add", {"x": {"lit": 5}}, when={"param": "go"}),
        "d": job("d", "argtasks.add", {"x": {"out": "lit"}}, ["lit"]),
    }
    params = [
        ParamPlan(name="n", type="Int", default={"lit": 10}),
        ParamPlan(name="go", type="Bool", default={"lit": True}),
    ]
    plan = FlowPlan(name="args", params=params, jobs=jobs, order=list(jobs))
    return Plan(source="test", flows={"args": plan})


async def test_literal_arguments_need_no_environment(
    client: Client, start_worker: WorkerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "argtasks.py").write_text(TASKS)
    tasks = load_tasks(["argtasks"], [tmp_path])
    built: list[str] = []
    made = attempt_module.Attempt.environment

    def counted(self: attempt_module.Attempt, settings: Any) -> Any:
        built.append(str((self.run or {}).get("name")))
        return made(self, settings)

    monkeypatch.setattr(attempt_module.Attempt, "environment", counted)
    await client.deploy(flow())
    await start_worker(tasks)
    for params, n, go in (({}, 10, True), ({"n": 3}, 3, True), ({"n": 4, "go": False}, 4, False)):
        built.clear()
        info = await client.wait(await client.start_run("args", params), timeout=30)
        assert info.state == "succeeded", info
        got = {name: (j.state, j.result) for name, j in info.jobs.items()}
        assert got == {
            "lit": ("succeeded", 3),
            "lst": ("succeeded", 3),  # its own [1, 2] each run: a list grown by an earlier run is not reused
            "p": ("succeeded", n + 1),
            "w": ("succeeded", 6) if go else ("skipped", None),
            "d": ("succeeded", 4),
        }
        # the plain-literal job made no environment; the others one each
        assert sorted(built) == ["d", "lst", "p", "w"]
