from __future__ import annotations

import json
import os
from pathlib import Path

from tqflow.compiler import compile_file
from tqflow.plan import PLAN_SCHEMA, Plan

from helpers import plan_of

SNAPSHOTS = Path(__file__).parent / "snapshots"
EXAMPLES = Path(__file__).parents[2] / "examples"


def test_hello_plan_matches_its_snapshot() -> None:
    """Regenerate with TQFLOW_UPDATE_SNAPSHOTS=1 after an intended change to the plan."""
    result = compile_file(EXAMPLES / "hello" / "hello.tqflow")
    assert result.plan is not None
    text = json.dumps(json.loads(result.plan.to_json()), indent=2, sort_keys=True) + "\n"
    snapshot = SNAPSHOTS / "hello.plan.json"
    if os.environ.get("TQFLOW_UPDATE_SNAPSHOTS"):
        snapshot.parent.mkdir(exist_ok=True)
        snapshot.write_text(text)
    assert text == snapshot.read_text()


def test_plan_is_canonical_and_identified_by_its_hash() -> None:
    first, second = plan_of("diamond.tqflow"), plan_of("diamond.tqflow")
    assert first.to_json() == second.to_json()
    assert first.id == second.id and len(first.id) == 64
    data = json.loads(first.to_json())
    assert data["schema"] == PLAN_SCHEMA
    assert Plan.from_json(first.to_json()) == first


def test_plan_holds_order_edges_and_expressions() -> None:
    flow = plan_of("diamond.tqflow").flows["diamond"]
    assert flow.order == ["src", "sum", "twice", "joined"]
    assert flow.jobs["joined"].waits_for == ["sum", "twice"]
    assert flow.jobs["joined"].args == {"a": {"out": "sum"}, "b": {"out": "twice"}}
    assert flow.jobs["src"].args == {"n": {"param": "n"}}
    assert flow.dependents()["src"] == ["sum", "twice"]


def test_after_conditions_are_lowered() -> None:
    flow = plan_of("failing.tqflow").flows["failing"]
    assert flow.jobs["cleanup"].after == {"status": ["bad", "failed"]}
    assert flow.jobs["always"].after == {"status": ["bad", "done"]}
    assert flow.jobs["later"].after == {"status": ["after_it", "succeeded"]}
    assert flow.jobs["bad"].retry.attempts == 2
