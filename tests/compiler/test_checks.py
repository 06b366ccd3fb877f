from __future__ import annotations

import pytest

from tqflow.compiler import compile_source
from tqflow.dsl.diagnostics import render_all

from helpers import FLOWS, source

HEADER = "use sample_tasks as t\n"


def diagnostics_of(body: str) -> list[tuple[str, int, int, str]]:
    result = compile_source(source(HEADER + body))
    return [(d.code, d.span.line, d.span.column, d.message) for d in result.diagnostics]


def test_a_good_flow_compiles() -> None:
    result = compile_source(
        source(HEADER + "flow f {\n  job a = t.source(n=3)\n  job b = t.total(values=a.out)\n}\n")
    )
    assert result.ok, render_all(result.diagnostics)
    assert result.plan is not None
    assert result.plan.flows["f"].order == ["a", "b"]
    assert result.plan.flows["f"].jobs["b"].data_deps == ["a"]


def test_cycle_reports_the_whole_path_with_locations() -> None:
    text = (FLOWS / "cycle.tqflow").read_text()
    result = compile_source(source(text, "cycle.tqflow"))
    assert not result.ok
    [cycle] = [d for d in result.diagnostics if d.code == "TQ0401"]
    assert "a -> b -> c -> a" in cycle.message
    assert (cycle.span.line, cycle.span.column) == (4, 7)
    rendered = render_all(result.diagnostics)
    assert "cycle.tqflow:4:7" in rendered
    assert "`b` waits for `a` here" in rendered and "`a` waits for `c` here" in rendered


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "flow f {\n  job a = t.nope(n=1)\n}\n",
            ("TQ0201", 3, 13, "module `sample_tasks` has no task `nope`"),  # the caret on the task name
        ),
        ("flow f {\n  job a = u.source(n=1)\n}\n", ("TQ0101", 3, 11, "`u` is not a module bound by `use`")),
        ("flow f {\n  job a = t.source(m=1)\n}\n", ("TQ0301", 3, 20, "task `source` has no parameter `m`")),
        (
            "flow f {\n  job a = t.total()\n}\n",
            ("TQ0302", 3, 11, "missing argument `values` for task `total`"),
        ),
        (
            "flow f {\n  job a = t.source(1)\n}\n",
            ("TQ0303", 3, 20, "positional argument to `sample_tasks.source`"),
        ),
        ("flow f {\n  job a = t.total(values=b.out)\n}\n", ("TQ0202", 3, 26, "unknown name `b`")),
        ("flow f {\n  job a = t.source(n=params.k)\n}\n", ("TQ0204", 3, 29, "flow `f` has no parameter `k`")),
        (
            "flow f {\n  job a = t.source(n=1) {\n    after zz\n  }\n}\n",
            ("TQ0203", 4, 11, "flow `f` has no job `zz`"),
        ),
        (
            "flow f {\n  job a = t.source(n=1) {\n    priority urgent\n  }\n}\n",
            ("TQ0206", 4, 14, "unknown priority `urgent`"),
        ),
        (
            "flow f {\n  job a = t.source(n=1) {\n    retry fixed(1s), attempts=0\n  }\n}\n",
            ("TQ0501", 4, 31, "`attempts=0`: attempts counts every try, the first included"),
        ),
        (
            "flow f {\n  job a = t.source(n=1) {\n    retry flakey\n  }\n}\n",
            ("TQ0205", 4, 11, "unknown retry policy `flakey`"),
        ),
        (
            "flow f {\n  job a = t.source(n=1)\n  job a = t.source(n=2)\n}\n",
            ("TQ0103", 4, 7, "job `a` is declared twice in flow `f`"),
        ),
    ],
)
def test_name_and_call_errors(body: str, expected: tuple[str, int, int, str]) -> None:
    assert expected in diagnostics_of(body)


def test_did_you_mean_for_names() -> None:
    result = compile_source(
        source(HEADER + "flow f {\n  job a = t.sorce(n=1)\n  job b = t.total(valus=a.out)\n}\n")
    )
    helps = [d.help for d in result.diagnostics]
    assert "did you mean `source`?" in helps
    assert "did you mean `values`?" in helps


def test_several_errors_are_reported_at_once() -> None:
    found = diagnostics_of(
        "flow f {\n  job a = t.nope(n=1)\n  job b = t.source(m=1)\n  job c = t.total()\n}\n"
    )
    assert [code for code, *_ in found] == ["TQ0201", "TQ0302", "TQ0301", "TQ0302"]


def test_unknown_module() -> None:
    result = compile_source(source("use no_such_module as x\nflow f {\n  job a = x.y()\n}\n"))
    codes = [d.code for d in result.diagnostics]
    assert codes[0] == "TQ0101"
