"""What a client keeps of the plans it deployed or read: a version's plan parsed once (by its plan id),
a flow's id and run records computed once a plan object. Plans are frozen, so nothing kept goes stale;
a new deploy or a rollback makes another version current, whose id says whether it is known."""

from __future__ import annotations

from typing import Any

import pytest

from tqflow.plan import FlowPlan
from tqflow.runtime import runs
from tqflow.runtime.client import Client

from helpers import job_plan as job
from helpers import plan_with


def flow(x: int) -> FlowPlan:
    return FlowPlan(
        name="cached",
        jobs={
            "a": job("a", "job_tasks.add", {"x": {"lit": x}}),
            "b": job("b", "job_tasks.add", {"x": {"out": "a"}}, ["a"]),
        },
        order=["a", "b"],
    )


async def test_a_client_parses_a_deployed_version_once(
    client: Client, redis: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = flow(1), flow(2)
    await client.deploy(plan_with(first))
    parsed: list[str] = []
    real = FlowPlan.model_validate_json

    def counting(text: Any, *args: Any, **kwargs: Any) -> FlowPlan:
        parsed.append(str(text)[:20])
        return real(text, *args, **kwargs)

    monkeypatch.setattr(FlowPlan, "model_validate_json", counting)
    other = Client(redis, namespace)  # a client that did not deploy it
    assert (await other.flow("cached")) == (1, first) and len(parsed) == 1
    assert (await other.flow("cached")) == (1, first) and len(parsed) == 1  # known by its id: not parsed
    assert (await client.flow("cached"))[1] is first and len(parsed) == 1  # the deployer keeps its own
    await client.deploy(plan_with(second))
    assert (await other.flow("cached")) == (2, second) and len(parsed) == 2  # a new version: read
    await client.deployments.rollback("cached")
    assert (await other.flow("cached")) == (1, first) and len(parsed) == 2  # version 1's id: known
    assert (await other.flow("cached", 2)) == (2, second) and len(parsed) == 2
    await other.waiter.close()


def test_a_flows_id_and_run_records_are_made_once_a_plan_object() -> None:
    one = flow(1)
    assert one.id == one.id == flow(1).id != flow(2).id
    records = runs.job_records(one)
    records[0]["name"] = "changed"  # a copy: the next call's records are the plan's
    again = runs.job_records(one)
    assert again[0]["name"] == "a" and again == runs.job_records(flow(1))
    assert [r["name"] for r in runs.job_records(flow(2))] == ["a", "b"]
