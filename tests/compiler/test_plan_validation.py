"""The plan models validate themselves (plan/model.py): the Python API and the compiler build them and
report what they reject; priorities convert between names and numbers in one place (`Priority`)."""

from __future__ import annotations

from typing import Any

import pytest

from tqflow.compiler import compile_source
from tqflow.plan import JobPlan, Priority, RetryPlan, TaskRef, UniquePlan
from tqflow.runtime import policies

from helpers import source

REF = TaskRef(name="m.f", module="m", function="f", signature_hash="0")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "fixed", "attempts": 0}, "at least 1"),
        ({"kind": "exponential", "jitter": "150%"}, "between 0% and 100%"),
        ({"kind": "exponential", "jitter": "some"}, "none, full, equal or a percentage"),
        ({"kind": "fixed", "delay_ms": -1}, "must not be negative"),
        ({"kind": "schedule", "schedule_ms": [1000, -5]}, "must not be negative"),
        ({"kind": "schedule", "schedule_ms": []}, "at least one delay"),
        ({"kind": "exponential", "factor": 0}, "greater than 0"),
    ],
)
def test_a_retry_plan_rejects_what_cannot_run(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPlan(**fields)
    with pytest.raises(ValueError, match=message):  # a plan read back from JSON is checked the same way
        RetryPlan.model_validate_json(RetryPlan.model_construct(**fields).model_dump_json())


def test_the_python_api_gets_the_same_rules() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPlan(kind="fixed", attempts=True)  # a boolean is not a count
    assert policies.exponential("1s", jitter="10%", attempts=4).attempts == 4
    with pytest.raises(ValueError, match="at least 1"):
        policies.fixed("1s", attempts=0)
    with pytest.raises(ValueError, match="none, full, equal"):
        policies.exponential("1s", jitter="lots")
    with pytest.raises(ValueError, match="at least one delay"):
        policies.schedule([])


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        ("exponential(1s, factor=0)", "an exponential factor must be greater than 0, got 0.0"),
        ("exponential(1s, jitter=150%)", "a jitter percentage is between 0% and 100%"),
        ("fixed(1s), attempts=0", "`attempts=0`: attempts counts every try, the first included"),
    ],
)
def test_the_compiler_reports_the_models_rules_as_diagnostics(retry: str, message: str) -> None:
    text = f"use sample_tasks as t\nflow f {{\n  job a = t.source(n=1) {{\n    retry {retry}\n  }}\n}}\n"
    result = compile_source(source(text))
    assert [(d.code, d.span.line, d.message) for d in result.diagnostics] == [("TQ0501", 4, message)]


def test_other_models_check_themselves() -> None:
    with pytest.raises(ValueError, match="priority must be one of"):
        JobPlan(name="a", task=REF, args={}, queue="q", priority="urgent")
    with pytest.raises(ValueError, match="must not be negative"):
        JobPlan(name="a", task=REF, args={}, queue="q", timeout_ms=-1)
    with pytest.raises(ValueError, match="longer than 0"):
        UniquePlan(key={"lit": "k"}, within_ms=0)
    assert JobPlan(name="a", task=REF, args={}, queue="q", priority="high").priority == "high"


def test_priorities_convert_in_one_place() -> None:
    assert [p.label for p in Priority] == ["critical", "high", "normal", "low", "batch"]
    assert Priority.parse("high") is Priority.HIGH and Priority.parse(3) is Priority.LOW
    assert [Priority.label_of(v) for v in (b"1", "4", 0, None, "", "9", "x")] == [
        "high",
        "batch",
        "critical",
        "",
        "",
        "",
        "",
    ]
    for bad in ("urgent", 5, -1, True):
        with pytest.raises(ValueError, match="priority must be one of"):
            Priority.parse(bad)
