"""The fast parser (dsl/fast_parser.py) agrees with the Lark path: where it parses, the tree is the one
Lark and the builder give, spans and texts included; where Lark finds an error, it falls back.

The corpus is every `.tqflow` file in the repository and every ```tqflow block of docs/, then
generated programs (grammar-valid, with keywords as names, mutated). A construct another change adds
to the grammar makes the fast path fall back (these tests still pass); teaching it to the fast path
is optional, and these tests then check it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
from flowgen import KEYWORDS, expressions, modules
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tqflow.dsl import ast
from tqflow.dsl.fast_lexer import grammar_keywords, tokens
from tqflow.dsl.formatter import format_module
from tqflow.dsl.parser import MAX_NESTING, parse_fast_only, parse_with_lark
from tqflow.dsl.source import Source, Span

ROOT = Path(__file__).parents[2]
FILES = sorted(p for p in [*ROOT.glob("examples/**/*.tqflow"), *ROOT.glob("tests/**/*.tqflow")])
DOC_BLOCKS = [
    (f"{doc.name}:{n}", block)
    for doc in sorted((ROOT / "docs").glob("*.md"))
    for n, block in enumerate(re.findall(r"```tqflow\n(.*?)```", doc.read_text(encoding="utf-8"), re.S))
]
EXAMPLES = int(os.environ.get("TQFLOW_PROPERTY_EXAMPLES", "60"))
GENERATED = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def dump(node: object) -> object:
    """Everything in a tree, spans and `text` fields included (tree equality leaves them out)."""
    if isinstance(node, Span):
        return (node.start, node.end, node.line, node.column, node.end_line, node.end_column)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        fields = [
            (f.name, dump(getattr(node, f.name))) for f in dataclasses.fields(node) if f.name != "source"
        ]
        return (type(node).__name__, *fields)
    if isinstance(node, tuple | list):
        return tuple(dump(x) for x in node)
    return node


def agree(text: str, path: str = "case.tqflow") -> ast.Module | None:
    """Both paths on `text`: equal trees, or the fast path falls back; returns the fast path's tree."""
    source = Source(path, text)
    reference = parse_with_lark(source)
    fast = parse_fast_only(source)
    if reference is None:
        assert fast is None, f"the fast path parsed what Lark refuses:\n{text}"
    elif fast is not None:
        assert dump(fast) == dump(reference), text
    return fast


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_every_flow_file_parses_alike(path: Path) -> None:
    source = Source.from_file(path)
    if source.undecodable_at is None:
        agree(source.text, str(path))


@pytest.mark.parametrize(("name", "block"), DOC_BLOCKS, ids=[n for n, _b in DOC_BLOCKS])
def test_every_docs_example_parses_alike(name: str, block: str) -> None:
    agree(block, name)


def test_the_benchmark_flow_takes_the_fast_path() -> None:
    lines = ["use tasks as t", "", "flow big {", "  job j0 = t.step(a=1, b=2)"]
    lines += [f"  job j{i} = t.step(a=j{i - 1}.out, b=j{max(0, i - 2 - i % 7)}.out)" for i in range(1, 300)]
    module = agree("\n".join([*lines, "}"]) + "\n")
    assert module is not None and len(module.flows[0].jobs) == 300


CASES = {
    "keywords as names": """use queue.retry as delay
use m.{after, when, job,}
import "x.tqflow" as in
retry for = fixed(1s), attempts=3
flow job {
  params {
    queue: Int = 1; delay: List[Int?]? = [1, 2,]
    when: Bool
  }
  job output = delay.timeout(in=params.queue, after=x.after.none, x=not true) for every in params.at {
    retry none; priority none
    after a + not
    when on == else
  }
  output for = queue(1) - in
}
""",
    "parentheses and spans": """flow f {
  job a = m.t(x=(1), y=((a + b)) - c, z=(a).b[(c)], w=not (a and b) and (c or d) or e)
  output o = ((a or b) or c) and (d == (e))
}
""",
    "layout": """
# a comment first

use m   # trailing
flow f {   # after the brace

  job a = m.t(
    x=[1,
       2],   # inside brackets
    y={"k":
       {"n": 1}},
  ) { after b; when c
      timeout 5m }  # end


  job b = m.t() \\
    { priority high }
}
""",
    "every literal": """flow f {
  job a = m.t(s="a\\tb\\"c", f=f"x{a.b}y{{z}}{ c + 1 }", i=42, fl=3.25, d=90s, ms=5ms, p=12.5%,
              date=2026-01-31, dt=2026-01-31T02:30:00+01:00, z=2026-01-31T02:30Z, b=true, n=none,
              l=[], e={}, nested={{"a": 1}: [none, false]})
}
""",
    "signals and events": """flow f {
  schedule event "order.paid" { params { order = event.id }; key event.id + "-" + key within 1h }
  schedule event "x"
  job approve = signal Approval { timeout 2d; after review }
  job more = signal list[Int]?
  job signal = m.t(key=signal.out, within=event)
  job z = m.t(x=approve.out.by)
}
""",
    "schedules and retries": """retry db = {
  on errors.Timeout, Gateway -> exponential(1s, factor=2, max=1m), attempts=8
  never CardDeclined; else -> fixed(5s)
}
retry plain = lib.policy
flow f {
  queue "q"
  schedule cron "30 2 * * *" tz "Europe/Paris" { catchup last(3); overlap skip; tries 5
    params { day = run.date - 1d; n = 2 } }
  schedule every 6h
  schedule at "2026-12-01T09:00:00+01:00"
  defaults { priority normal; retry db }
  defaults { timeout 20m }
  job a = m.t() {
    retry { on X -> none }
    unique key=params.day, within=24h, conflict=skip
    dead_letter "dl"; queue "other"; deadline 1h; delay 1s
  }
}
flow alias = shared.nightly
""",
    "limiters": """limiter api = rate(10/s, burst=20,)
limiter db = concurrency(5)
limiter slow = rate(100/10s, 2.5/m, per=limit)
flow f {
  defaults { limit db }
  job a = m.t(limit=1, by=2, fair=3, weight=4) {
    limit api by params.customer + "-" + by; fair by params.tenant weight params.weight
    limit shared.db
    fair by (x)
  }
  output limiter = a.out.by
}
""",
    "signals": """flow f {
  job approve = signal Approval { timeout 2d; after a }
  job typed = signal List[Int?]?
  job a = m.t(signal=1, x=signal.out)
  output signal = approve.out.signal
}
""",
    "events": """flow f {
  params { key: Str; within: Int = 1; event: Str }
  schedule event "order.paid" { key event.order_id within 1h; params { key = event.id } }
  schedule event "x" { key (a + b) }
  job a = m.t(key=params.key) { unique key=params.key, within=24h }
}
""",
    "two keys": 'flow f {\n  schedule event "x" { key a; key b }\n}\n',
    "a signal that is a call": "flow f {\n  job a = signal.t()\n}\n",
    "sub-flows and contextual keywords": """use tasks as signal
flow f {
  job a = signal.t(x=1)
  job b = flow.t ()
  job c = flow other(day=params.day, n=a.out) { retry fixed(1s), attempts=2; after a }
  job d = flow lib.nightly()
  job e = signal Approval { timeout 1h }
  job g = signal (1)
  output o = c.out.total
}
""",
    "a sub-flow with a fan-out": "flow f {\n  job a = flow other() for x in y\n}\n",
    "a sub-flow without a call": "flow f {\n  job a = flow other\n}\n",
    "a rate that is not one": "limiter api = rate(10/s + 1)\n",
    "windows newlines and no final newline": "use m\r\nflow f {\r\n  job a = m.t()\r\n}",
    "byte-order mark": "\ufeffuse m\nflow f {\n  job a = m.t()\n}\n",
    "empty": "",
    "only comments": "# nothing\n\n# here\n",
    "dict after a keyword name": "flow f {\n  job a = m.t() for x in y.in {\n  after b\n  }\n}\n",
    "dict as a block": "flow f {\n  job a = m.t() {\n  after {\n  }\n  }\n}\n",
    "syntax error": "flow f {\n  job a = m.t(\n}\n",
    "two queues": 'flow f {\n  queue "a"\n  queue "b"\n}\n',
    "bad escape": 'flow f {\n  queue "\\N{nope}"\n}\n',
    "bad date": "flow f {\n  output o = 2026-02-30\n}\n",
    "f-string with a bad part": 'flow f {\n  output o = f"{a +}"\n}\n',
    "chained comparison": "flow f {\n  output o = a == b == c\n}\n",
    "negative number": "flow f {\n  output o = -1\n}\n",
    "kwargs in a function call": "flow f {\n  output o = any_failed(a=1)\n}\n",
    "call on an attribute": "flow f {\n  output o = a.b(1)\n}\n",
    "unknown character": "flow f {\n  output o = a @ b\n}\n",
    "newline in a block brace": "flow f\n{\n}\n",
}


@pytest.mark.parametrize("name", CASES)
def test_hand_made_cases_parse_alike(name: str) -> None:
    agree(CASES[name])


def test_valid_hand_made_cases_take_the_fast_path() -> None:
    for name in [
        "keywords as names",
        "parentheses and spans",
        "layout",
        "every literal",
        "schedules and retries",
        "signals and events",
        "a signal that is a call",
        "sub-flows and contextual keywords",
    ]:
        assert agree(CASES[name]) is not None, name


@pytest.mark.parametrize("depth", [MAX_NESTING - 10, MAX_NESTING + 5, 400])
def test_deep_nesting_falls_back_to_the_checks_of_the_lark_path(depth: int) -> None:
    agree("flow f {\n  output o = " + "[" * depth + "]" * depth + "\n}\n")
    agree("flow f {\n  output o = a" + " + a" * depth + "\n}\n")
    agree("flow f {\n  output o = " + "not " * depth + "a\n}\n")
    agree("flow f {\n  output o = a" + " and a" * depth + "\n}\n")


def test_a_keyword_the_grammar_gained_is_never_read_as_a_name() -> None:
    """`grammar_keywords` reads the keywords from tqflow.lark, so a keyword another change adds there is
    known to the lexer at once (and makes the fast path fall back) instead of being lexed as a name."""
    keywords = grammar_keywords()
    assert {"job", "flow", "dead_letter", "none"} <= keywords.keys()
    lexed = {word: tokens(word)[0][0] for word in keywords}
    assert all(kind != "NAME" for kind in lexed.values()), lexed  # none is read as a name


@GENERATED
@given(modules())
def test_generated_programs_parse_alike(module: ast.Module) -> None:
    text = format_module(module, "")
    assert agree(text) is not None, text  # the generator writes only what the fast path knows


words = st.sampled_from(sorted(KEYWORDS)) | st.from_regex(r"[a-z][a-z0-9_]{0,4}", fullmatch=True)


@st.composite
def keyword_programs(draw: st.DrawFn) -> str:
    """Keywords where names go: some parse (a keyword the grammar does not accept there is a name),
    some do not; both paths must agree either way."""
    name, job, arg, attr, var = (draw(words) for _ in range(5))
    value = (
        format_module(
            ast.Module(
                source=Source("k.tqflow", ""),
                flows=(ast.Flow(name="f", outputs=(ast.Output(name="o", value=draw(expressions)),)),),
            ),
            "",
        )
        .split("= ", 1)[1]
        .split("\n")[0]
    )
    return (
        f"use m as {name}\nflow f {{\n  params {{ {var}: Int = {value} }}\n"
        f"  job {job} = {name}.t({arg}={value}, x={attr}.{attr}) for {var} in {attr} {{\n"
        f"    priority {var}; after {attr}\n  }}\n"
        f"  output {arg} = {attr}({value}) + {var}\n}}\n"
    )


@GENERATED
@given(keyword_programs())
def test_keywords_as_names_parse_alike(text: str) -> None:
    agree(text)


PIECES = [
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ";",
    "\n",
    " ",
    "#",
    '"',
    'f"{',
    "=",
    ".",
    ":",
    "not ",
    "and ",
    "in ",
    "none",
    "job ",
    "1s",
    "2026-01-01",
    "+",
    "-",
    "->",
    "?",
    "\\\n",
    "\r\n",
    "x",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from([p.read_text(encoding="utf-8") for p in FILES[:12]] + list(CASES.values())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        end = min(len(text), at + draw(st.integers(0, 8)))
        text = text[:at] + draw(st.sampled_from(PIECES) | st.text(max_size=2)) + text[end:]
    return text


@GENERATED
@given(mutated())
def test_mutated_files_parse_alike(text: str) -> None:
    agree(text)
