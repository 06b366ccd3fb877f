"""Signal jobs in the compiler: `job NAME = signal TYPE { timeout D }` lowers to a JobPlan whose `signal`
describes the payload (a ValueType the runtime checks without importing Python), `NAME.out` has the
payload's type downstream, and the formatter keeps the construct. Diagnostics are in golden/signals.*."""

from __future__ import annotations

from pathlib import Path

from tqflow.compiler import compile_source
from tqflow.compiler.render_graph import mermaid
from tqflow.dsl.diagnostics import Diagnostics
from tqflow.dsl.formatter import format_source
from tqflow.dsl.parser import parse
from tqflow.dsl.source import Source
from tqflow.plan.model import SIGNAL_TASK, ValueType
from tqflow.runtime.runs import job_records

MODULE = """
from dataclasses import dataclass
from typing import Literal, NewType, Optional

from pydantic import BaseModel

from tqflow.runtime import task

Ticket = NewType("Ticket", str)


class Person(BaseModel):
    name: str
    email: Optional[str] = None


@dataclass
class Decision:
    approved: bool
    by: Person
    level: Literal["low", "high"]
    tags: list[str]
    ticket: Ticket
    note: str = ""

    def summary(self) -> str:
        return self.note


@task
def act(decision: Decision, approved: bool) -> str:
    return ""


@task
def count(n: int) -> int:
    return n
"""

FLOW = """use approvals.{Decision}
use approvals as a

flow review {
  defaults { timeout 5m; retry fixed(1s), attempts=2 }
  job decide = signal Decision {
    timeout 2d
  }
  job go = a.act(decision=decide.out, approved=decide.out.approved)
  job more = signal list[Int]? {
    after go.failed
  }
  job yes = signal Bool
}
"""


def compiled(tmp_path: Path, text: str = FLOW) -> dict[str, object]:
    (tmp_path / "approvals.py").write_text(MODULE)
    result = compile_source(Source(str(tmp_path / "review.tqflow"), text))
    assert result.plan is not None, [d.message for d in result.diagnostics]
    return {"plan": result.plan, "flow": result.plan.flows["review"]}


def test_a_class_payload_lists_its_fields_and_the_required_ones(tmp_path: Path) -> None:
    flow = compiled(tmp_path)["flow"]
    decide = flow.jobs["decide"]  # type: ignore[attr-defined]
    assert decide.task.name == SIGNAL_TASK and decide.args == {} and decide.signal.timeout_ms == 172_800_000
    spec = decide.signal.type
    assert (spec.name, spec.qualname) == ("Decision", "approvals.Decision")
    assert spec.required == ["approved", "by", "level", "tags", "ticket"]  # `note` has a default
    assert set(spec.fields) == {"approved", "by", "level", "tags", "ticket", "note"}  # not the method
    assert spec.fields["approved"] == ValueType(name="Bool")
    assert spec.fields["level"] == ValueType(name="Literal", values=["low", "high"])
    assert spec.fields["tags"] == ValueType(name="list", args=[ValueType(name="Str")])
    assert spec.fields["ticket"] == ValueType(name="Str")  # a NewType takes its base's values
    person = spec.fields["by"]
    assert person.qualname == "approvals.Person" and person.required == ["name"]
    assert person.fields == {"name": ValueType(name="Str"), "email": ValueType(name="Str", optional=True)}


def test_built_in_payloads_and_what_a_signal_job_does_not_take(tmp_path: Path) -> None:
    flow = compiled(tmp_path)["flow"]
    more, yes = flow.jobs["more"], flow.jobs["yes"]  # type: ignore[attr-defined]
    assert more.signal.type == ValueType(name="list", args=[ValueType(name="Int")], optional=True)
    assert more.waits_for == ["go"] and more.after == {"status": ["go", "failed"]}
    assert yes.signal.type == ValueType(name="Bool") and yes.signal.timeout_ms is None  # waits for ever
    # the flow's defaults are a task's: not a signal job's timeout or retry
    assert yes.retry.kind == "none" and yes.timeout_ms is None
    assert flow.jobs["go"].retry.attempts == 2  # type: ignore[attr-defined]
    assert flow.jobs["go"].waits_for == ["decide"]  # type: ignore[attr-defined]
    assert flow.modules == ["approvals"]  # type: ignore[attr-defined]


def test_the_run_records_mark_signal_jobs_with_their_timeout(tmp_path: Path) -> None:
    flow = compiled(tmp_path)["flow"]
    records = {r["name"]: r for r in job_records(flow)}  # type: ignore[arg-type]
    assert records["decide"]["signal"] == "172800000" and records["yes"]["signal"] == "0"
    assert "signal" not in records["go"]


def test_the_graph_shows_what_a_signal_job_waits_for(tmp_path: Path) -> None:
    flow = compiled(tmp_path)["flow"]
    assert "signal Decision" in mermaid(flow)  # type: ignore[arg-type]


def test_the_formatter_keeps_signal_jobs(tmp_path: Path) -> None:
    messy = FLOW.replace("job yes = signal Bool", "job   yes =   signal    Bool").replace(
        "signal list[Int]? {", "signal list[ Int ]?{"
    )
    formatted = format_source(messy)
    assert formatted == FLOW
    assert parse(Source("a.tqflow", formatted), Diagnostics()) == parse(
        Source("b.tqflow", FLOW), Diagnostics()
    )


def test_signal_is_still_a_name_where_a_name_is_expected(tmp_path: Path) -> None:
    text = FLOW.replace("job yes = signal Bool", "job signal = a.count(n=1)\n  job z = a.count(n=signal.out)")
    flow = compiled(tmp_path, text)["flow"]
    assert flow.jobs["z"].waits_for == ["signal"]  # type: ignore[attr-defined]
