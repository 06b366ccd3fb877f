"""Property tests: the formatter keeps meaning and is idempotent on generated programs; cycle detection
agrees with networkx; retry delays stay within their bounds; plans do not depend on declaration order."""

from __future__ import annotations

import os
import random
import re

import networkx as nx
from flowgen import modules
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tqflow.compiler import compile_source
from tqflow.compiler.graph import job_graph
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Diagnostics, render_all
from tqflow.dsl.formatter import format_module, format_source
from tqflow.dsl.parser import parse
from tqflow.dsl.source import Source
from tqflow.plan import RetryPlan
from tqflow.runtime.backoff import MAX_DELAY_MS, delay_ms

from helpers import source

# A scaled-down slice by default; `TQFLOW_PROPERTY_EXAMPLES=500 pytest …` for a longer search.
EXAMPLES = int(os.environ.get("TQFLOW_PROPERTY_EXAMPLES", "15"))
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parsed(text: str) -> ast.Module:
    diagnostics = Diagnostics()
    module = parse(Source("gen.tqflow", text), diagnostics)
    assert module is not None, render_all(diagnostics) + "\n" + text
    return module


@FAST
@given(modules())
def test_printing_a_tree_gives_text_that_parses_back_to_it(module: ast.Module) -> None:
    text = format_module(module, "")
    assert parsed(text) == module, text
    assert format_source(text) == text


def _messy(text: str, rng: random.Random) -> tuple[str, int]:
    """The same program laid out badly: odd indentation, blank lines, comments everywhere."""
    out, count = [], 0
    for line in text.splitlines():
        stripped = line.strip()
        if rng.random() < 0.3 and not stripped.startswith(("}", ")")):
            out.append(" " * rng.randint(0, 6) + f"# note {count}")
            count += 1
        if rng.random() < 0.2:
            out.append("")
        comment = ""
        if rng.random() < 0.3 and not re.search(r'"[^"]*$', line):
            comment = f"   # tail {count}"
            count += 1
        out.append(" " * rng.randint(0, 8) + stripped + comment)
    return "\n".join(out) + "\n", count


@FAST
@given(modules(), st.randoms(use_true_random=False))
def test_fmt_is_idempotent_keeps_the_tree_and_every_comment(module: ast.Module, rng: random.Random) -> None:
    messy, comments = _messy(format_module(module, ""), rng)
    formatted = format_source(messy)
    assert parsed(formatted) == parsed(messy) == module
    assert format_source(formatted) == formatted
    assert len(re.findall(r"# (note|tail) \d+", formatted)) == comments


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 9).flatmap(lambda n: st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)))))
def test_cycle_detection_agrees_with_networkx(edges: set[tuple[int, int]]) -> None:
    jobs = sorted({f"j{i}" for edge in edges for i in edge}) or ["j0"]
    waits: dict[str, set[str]] = {j: set() for j in jobs}
    for upstream, downstream in edges:
        waits[f"j{downstream}"].add(f"j{upstream}")
    body = "".join(
        f"  job {j} = t.total(values=[{', '.join(f'{u}.out' for u in sorted(waits[j]))}])\n" for j in jobs
    )
    result = compile_source(source(f"use sample_tasks as t\nflow f {{\n{body}}}\n"))
    reported = any(d.code == "TQ0401" for d in result.diagnostics)
    expected = not nx.is_directed_acyclic_graph(nx.DiGraph([(f"j{u}", f"j{d}") for u, d in edges]))
    assert reported == expected
    assert nx.is_directed_acyclic_graph(job_graph(waits)) == (not expected)


policies = st.one_of(
    st.builds(RetryPlan, kind=st.just("fixed"), attempts=st.integers(1, 20), delay_ms=st.integers(0, 10**6)),
    st.builds(
        RetryPlan,
        kind=st.just("exponential"),
        attempts=st.integers(1, 20),
        delay_ms=st.integers(0, 10**5),
        factor=st.floats(1.0, 4.0),
        max_delay_ms=st.one_of(st.none(), st.integers(0, 10**7)),
        jitter=st.sampled_from(["none", "full", "equal", "10%", "50%", "100%"]),
    ),
    st.builds(
        RetryPlan,
        kind=st.just("schedule"),
        schedule_ms=st.lists(st.integers(0, 10**6), min_size=1, max_size=5),
    ),
)


@settings(max_examples=300, deadline=None)
@given(policies, st.integers(1, 40), st.integers(0, 2**32))
def test_retry_delays_stay_within_their_bounds(policy: RetryPlan, attempt: int, seed: int) -> None:
    delay = delay_ms(policy, attempt, random.Random(seed))
    if policy.kind == "fixed":
        base = policy.delay_ms
    elif policy.kind == "schedule":
        base = policy.schedule_ms[min(attempt, len(policy.schedule_ms)) - 1]
    else:
        base = int(policy.delay_ms * policy.factor ** (attempt - 1))
        base = min(base, policy.max_delay_ms) if policy.max_delay_ms is not None else base
        base = min(base, MAX_DELAY_MS)  # the runtime's 30-day ceiling
    spread = {"none": 0, "full": base, "equal": base}.get(policy.jitter)
    if spread is None:
        spread = int(base * float(policy.jitter[:-1]) / 100)
    low = base // 2 if policy.jitter == "equal" else 0 if policy.jitter == "full" else base - spread
    high = base if policy.jitter in ("full", "equal") else base + spread
    assert max(0, low) <= delay <= high


DECLARATIONS = [
    "retry slow = fixed(1s), attempts=2\n",
    "retry fast = exponential(100ms, factor=2, max=1s, jitter=full), attempts=4\n",
    "flow a {\n  defaults { retry slow }\n  job x = t.source(n=1)\n}\n",
    "flow b {\n  job y = t.source(n=2) {\n    retry fast\n    limit api by run.id\n    limit db\n  }\n}\n",
    "limiter api = rate(5/s, burst=10)\n",
    "limiter db = concurrency(2)\n",
]


@settings(max_examples=20, deadline=None)
@given(st.permutations(DECLARATIONS))
def test_plan_bytes_do_not_depend_on_declaration_order(order: list[str]) -> None:
    reference = compile_source(source("use sample_tasks as t\n" + "".join(DECLARATIONS))).plan
    shuffled = compile_source(source("use sample_tasks as t\n" + "".join(order))).plan
    assert reference is not None and shuffled is not None
    assert shuffled.to_json() == reference.to_json()
