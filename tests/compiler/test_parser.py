from __future__ import annotations

import pytest

from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Diagnostics, render
from tqflow.dsl.parser import parse, parse_duration

from helpers import source

GOOD = """
use etl.tasks as etl   # a comment
use payments.errors.{GatewayTimeout, CardDeclined}

retry db_flaky = exponential(5s, factor=2, max=2m, jitter=full), attempts=5

flow nightly {
  queue "etl"
  params {
    day: Date = run.date - 1d
    full: Bool = false
  }
  defaults { priority normal; timeout 20m; retry db_flaky }

  job extract = etl.extract(day=params.day)
  job load = etl.load(
    rows=extract.out,
    truncate=params.full,
  ) {
    priority high
    after extract
    when not params.full and extract.out != []
  }
  job alert = etl.hook(body=f"failed for {params.day}") {
    after any_failed(extract, load)
    retry none
  }
  output rows = load.out.row_count
  output first = load.out[0]
}
"""


def parse_ok(text: str) -> ast.Module:
    diagnostics = Diagnostics()
    module = parse(source(text), diagnostics)
    assert module is not None, [render(d) for d in diagnostics]
    return module


def test_parses_every_construct_of_the_first_slice() -> None:
    module = parse_ok(GOOD)
    assert [u.bound_name for u in module.uses] == ["etl", "errors"]
    assert module.uses[1].names == ("GatewayTimeout", "CardDeclined")
    assert module.retries[0].name == "db_flaky"
    flow = module.flows[0]
    assert flow.queue == "etl"
    assert [p.name for p in flow.params] == ["day", "full"]
    assert [s.kind for s in flow.defaults] == ["priority", "timeout", "retry"]
    assert [j.name for j in flow.jobs] == ["extract", "load", "alert"]
    load = flow.jobs[1]
    assert [a.name for a in load.call.args] == ["rows", "truncate"]
    assert [s.kind for s in load.settings] == ["priority", "after", "when"]
    alert = flow.jobs[2]
    body = alert.call.args[0].value
    assert isinstance(body, ast.FString)
    assert body.parts[0] == "failed for "
    assert [o.name for o in flow.outputs] == ["rows", "first"]


def test_spans_point_at_the_source() -> None:
    module = parse_ok(GOOD)
    job = module.flows[0].jobs[0]
    assert job.name_span.line == 15
    assert GOOD[job.name_span.start : job.name_span.end] == "extract"
    fstring = module.flows[0].jobs[2].call.args[0].value
    assert isinstance(fstring, ast.FString)
    inner = fstring.parts[1]
    assert isinstance(inner, ast.Attr)
    assert GOOD[inner.span.start : inner.span.end] == "params.day"


def test_keywords_are_names_where_a_name_is_expected() -> None:
    module = parse_ok(
        'use m as m\nflow f {\n  params {\n    queue: Str = "x"\n  }\n  job a = m.t(x=params.queue)\n}\n'
    )
    assert module.flows[0].params[0].name == "queue"


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("flow f {\n  job a = m.t(x=1\n}\n", 3, 1, "unclosed `(`"),
        ("flow f {\n  job = m.t()\n}\n", 2, 7, "a job needs a name"),
        ("flow f {\n  job a = m.t() {\n    priority\n  }\n}\n", 3, 13, "unexpected end of line"),
        ("flow f {\n  jbo a = m.t()\n}\n", 2, 3, "unknown statement `jbo` in a flow"),
        ("use m as\n", 1, 9, "unexpected end of line"),
        ('flow f {\n  job a = m.t(x="unterminated)\n}\n', 2, 17, "unexpected character"),
        ('flow f {\n  job a = m.t(x=f"{params.}")\n}\n', 2, 20, "invalid expression in f-string"),
    ],
)
def test_syntax_errors_say_where_and_what(text: str, line: int, column: int, fragment: str) -> None:
    diagnostics = Diagnostics()
    assert parse(source(text), diagnostics) is None
    first = diagnostics.items[0]
    assert first.code == "TQ0001"
    assert fragment in first.message
    assert (first.span.line, first.span.column) == (line, column)


def test_reports_one_error_per_declaration() -> None:
    text = "flow a {\n  job x = m.t(\n}\n\nflow b {\n  job = m.t()\n}\n"
    diagnostics = Diagnostics()
    assert parse(source(text), diagnostics) is None
    assert [d.span.line for d in diagnostics.items] == [3, 6]


def test_rendering_looks_like_rustc() -> None:
    diagnostics = Diagnostics()
    parse(source("flow f {\n  job = m.t()\n}\n"), diagnostics)
    text = render(diagnostics.items[0])
    assert text.splitlines()[0] == "error[TQ0001]: a job needs a name"
    assert "--> " in text and "test.tqflow:2:7" in text
    assert "2 |   job = m.t()" in text
    assert "  |       ^ expected a name" in text


@pytest.mark.parametrize(
    ("text", "ms"), [("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("2h", 7_200_000), ("1d", 86_400_000)]
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms
