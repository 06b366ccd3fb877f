"""Sub-flow jobs in the compiler: `job NAME = flow OTHER(p=…)` (OTHER in this file or imported) lowers to a
JobPlan whose `subflow` names the child flow deployed with the plan; `NAME.out.OUTPUT` has the child
output's type; the formatter keeps the construct; `signal` and `flow` stay names before `.` and `(` on both
parser paths. Diagnostics (unknown, missing, mistyped parameters, unknown flows, cycles) are in
golden/subflows.*."""

from __future__ import annotations

from pathlib import Path

import pytest

from tqflow.compiler import compile_source
from tqflow.dsl.diagnostics import Diagnostics
from tqflow.dsl.fast_parser import parse_fast
from tqflow.dsl.formatter import format_source
from tqflow.dsl.parser import parse, parse_with_lark
from tqflow.dsl.source import Source
from tqflow.plan.model import SUBFLOW_TASK

TASKS = """
from tqflow.runtime import task


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def label(text: str) -> str:
    return text
"""

LIB = """use tasks as t

flow scale {
  params { x: Int }
  schedule every 1h
  job z = flow inner(v=params.x)
  output y = z.out.w
}

flow inner {
  params { v: Int }
  job q = t.add(a=params.v, b=10)
  output w = q.out
}
"""

MAIN = """use tasks as t
import "lib.tqflow" as lib

flow parent {
  params { n: Int = 2 }
  job c = flow child(n=params.n) {
    retry fixed(1s), attempts=3
  }
  job d = t.add(a=c.out.total, b=1)
  job e = flow lib.scale(x=d.out) {
    after d
  }
  job f = t.add(a=e.out.y, b=c.out.total)
  output r = f.out
}

flow child {
  params { n: Int; m: Int = 1 }
  job a = t.add(a=params.n, b=params.m)
  output total = a.out
}
"""


def compiled(tmp_path: Path, text: str = MAIN) -> object:
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "lib.tqflow").write_text(LIB)
    result = compile_source(Source(str(tmp_path / "main.tqflow"), text))
    assert result.plan is not None, [d.message for d in result.diagnostics]
    return result.plan


def test_a_sub_flow_job_names_its_child_and_the_child_is_deployed_with_the_plan(tmp_path: Path) -> None:
    plan = compiled(tmp_path)
    flows = plan.flows  # type: ignore[attr-defined]
    assert set(flows) == {"parent", "child", "lib.scale", "lib.inner"}
    c = flows["parent"].jobs["c"]
    assert c.task.name == SUBFLOW_TASK and c.subflow.flow == "child"
    assert c.subflow.plan_id == flows["child"].id  # the child version it was compiled against
    assert set(c.args) == {"n"}
    assert c.retry.attempts == 3 and c.waits_for == []
    d = flows["parent"].jobs["d"]
    assert d.waits_for == ["c"] and d.data_deps == ["c"]
    e = flows["parent"].jobs["e"]
    assert e.subflow.flow == "lib.scale" and e.waits_for == ["d"]
    # an imported child comes without its schedules, and brings the flows it starts, renamed with it
    assert flows["lib.scale"].triggers == []
    assert flows["lib.scale"].jobs["z"].subflow.flow == "lib.inner"
    assert flows["lib.scale"].jobs["z"].subflow.plan_id == flows["lib.inner"].id


def test_outputs_are_typed_downstream(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "lib.tqflow").write_text(LIB)
    bad = MAIN.replace("job f = t.add(", "job f = t.label(text=e.out.y)\n  job g = t.add(")
    result = compile_source(Source(str(tmp_path / "main.tqflow"), bad))
    errors = [(d.code, d.message) for d in result.diagnostics.errors]
    assert errors == [("TQ0304", "argument `text` expects Str, but this is Int")]


@pytest.mark.parametrize("keyword", ["signal", "flow"])
def test_signal_and_flow_are_task_modules_before_a_dot_or_a_parenthesis(tmp_path: Path, keyword: str) -> None:
    text = f"""use tasks as {keyword}

flow {keyword}s {{
  job a = {keyword}.add(a=1, b=2)
  job b = {keyword} .label(text="x")
  job c = signal Bool
  job d = flow other(x=a.out)
}}

flow other {{
  params {{ x: Int }}
}}
"""
    lark = parse_with_lark(Source("a.tqflow", text))
    fast = parse_fast(text, Source("a.tqflow", text), 100)
    assert lark is not None and fast is not None and fast == lark
    jobs = {j.name: j for j in lark.flows[0].jobs}
    assert jobs["a"].call.func == f"{keyword}.add" and not jobs["a"].subflow and jobs["a"].signal is None
    assert jobs["b"].call.func == f"{keyword}.label"
    assert jobs["c"].signal is not None and jobs["d"].subflow
    plan = compiled(tmp_path, text)
    assert plan.flows[f"{keyword}s"].jobs["a"].task.name == "tasks.add"  # type: ignore[attr-defined]
    assert plan.flows[f"{keyword}s"].jobs["d"].subflow.flow == "other"  # type: ignore[attr-defined]


def test_the_formatter_keeps_sub_flow_jobs_and_is_idempotent() -> None:
    messy = MAIN.replace("job c = flow child(n=params.n) {", "job  c = flow  child( n = params.n ){")
    messy = messy.replace("flow lib.scale(x=d.out)", "flow lib . scale(x=d.out,)")
    formatted = format_source(messy)
    assert format_source(formatted) == formatted
    assert "  job c = flow child(n=params.n) {\n" in formatted and "flow lib.scale(x=d.out)" in formatted
    tidy = parse(Source("a.tqflow", formatted), Diagnostics())
    assert tidy == parse(Source("b.tqflow", messy), Diagnostics())


def test_a_cycle_through_three_flows_is_reported_once_with_its_path(tmp_path: Path) -> None:
    text = "".join(f"flow {a} {{\n  job x = flow {b}()\n}}\n" for a, b in ["ab", "bc", "ca"])
    result = compile_source(Source(str(tmp_path / "c.tqflow"), text))
    assert [(d.code, d.message) for d in result.diagnostics.errors] == [
        ("TQ0401", "sub-flow cycle: a -> b -> c -> a")
    ]
