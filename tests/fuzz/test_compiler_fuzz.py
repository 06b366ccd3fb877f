"""Fuzz the parser and compiler with mutated and generated `.tqflow` text: every input gives
diagnostics or a plan, never an unhandled exception.

The default run is a short slice; `TQFLOW_FUZZ_EXAMPLES=200000 pytest tests/fuzz -m faults` runs long
(see docs/guarantees.md for the recorded result).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from compiler.flowgen import modules
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tqflow.compiler import INTERNAL, compile_source
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import render_all
from tqflow.dsl.formatter import FormatError, format_module, format_source
from tqflow.dsl.source import Source

ROOT = Path(__file__).parents[2]
SEEDS = [
    p.read_text() for p in sorted([*ROOT.glob("examples/**/*.tqflow"), *ROOT.glob("tests/flows/*.tqflow")])
]
FOLDER = ROOT / "tests" / "flows"  # so `use sample_tasks` resolves and the checks run deep
TOKENS = [
    "flow",
    "job",
    "use",
    "as",
    "after",
    "when",
    "retry",
    "priority",
    "params",
    "defaults",
    "output",
    "queue",
    "for",
    "in",
    "not",
    "and",
    "or",
    "none",
    "true",
    "=",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ".",
    ":",
    ";",
    "\n",
    " ",
    "#",
    '"',
    'f"{',
    "}",
    "1s",
    "5m",
    "42",
    "3.5",
    "x",
    "t.note",
    "text=",
    "a.out",
    "->",
    "on",
    "never",
    "fixed(1s)",
    "attempts=0",
    "any_failed(",
    "params.",
    "run.date",
    "- 1d",
    "limiter",
    "rate(",
    "10/s",
    "concurrency(0)",
    "burst=",
    "limit",
    "by",
    "fair",
    "weight",
]
SLICE = int(os.environ.get("TQFLOW_FUZZ_EXAMPLES", "300"))


def compiles_or_reports(text: str | Source) -> None:
    source = text if isinstance(text, Source) else Source(str(FOLDER / "fuzz.tqflow"), text)
    result = compile_source(source)
    internal = [d.message for d in result.diagnostics if d.code == INTERNAL]
    assert internal == [], internal  # a compiler bug turned into a diagnostic is still a bug
    if result.plan is None:
        assert result.diagnostics.has_errors, "no plan and no error"
        render_all(result.diagnostics)  # rendering must not fail either
    else:
        result.plan.to_json()


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        piece = draw(st.sampled_from(TOKENS) | st.text(max_size=3))
        end = min(len(text), position + draw(st.integers(0, 12)))
        if action == "insert":
            text = text[:position] + piece + text[position:]
        elif action == "delete":
            text = text[:position] + text[end:]
        elif action == "replace":
            text = text[:position] + piece + text[end:]
        else:
            text = text[:position] + text[position:end] * 2 + text[end:]
    return text


def _spoilt(data: bytes) -> st.SearchStrategy[bytes]:
    """A real file with a few bytes changed to ones that are not UTF-8, or a byte-order mark added."""
    return st.tuples(
        st.integers(0, max(0, len(data) - 1)),
        st.sampled_from([b"\xff", b"\xe9", b"\xc3", b"\x00"]),
        st.booleans(),
    ).map(lambda t: (b"\xef\xbb\xbf" if t[2] else b"") + data[: t[0]] + t[1] + data[t[0] + 1 :])


token_soup = st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join)


@settings(max_examples=SLICE, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(mutated())
def test_mutated_files_never_crash_the_compiler(text: str) -> None:
    compiles_or_reports(text)


@settings(max_examples=SLICE, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(token_soup)
def test_token_soup_never_crashes_the_compiler(text: str) -> None:
    compiles_or_reports(text)


@settings(
    max_examples=max(50, SLICE // 3), deadline=None, suppress_health_check=list(HealthCheck), database=None
)
@given(st.text(max_size=400))
def test_arbitrary_text_never_crashes_the_compiler(text: str) -> None:
    compiles_or_reports(text)


@pytest.mark.parametrize("size", [10_000, 200_000])
def test_huge_files_are_handled(size: int) -> None:
    jobs = "\n".join(f'  job j{i} = t.note(text="{i}")' for i in range(size // 40))
    compiles_or_reports(f"use sample_tasks as t\nflow big {{\n{jobs}\n}}\n")
    compiles_or_reports("flow f {\n" + "(" * size + "\n}\n")


@settings(
    max_examples=max(50, SLICE // 3), deadline=None, suppress_health_check=list(HealthCheck), database=None
)
@given(st.binary(max_size=300) | st.sampled_from(SEEDS).map(str.encode).flatmap(_spoilt))
def test_arbitrary_bytes_never_crash_the_compiler(data: bytes) -> None:
    """Bytes as read from disk: invalid UTF-8, byte-order marks, NULs and control characters."""
    compiles_or_reports(Source.from_bytes(str(FOLDER / "fuzz.tqflow"), data))


@settings(
    max_examples=max(30, SLICE // 10), deadline=None, suppress_health_check=list(HealthCheck), database=None
)
@given(modules())
def test_grammar_valid_programs_never_crash_check_or_fmt(module: ast.Module) -> None:
    text = format_module(module, "")
    compiles_or_reports(text)
    try:
        once = format_source(text)
    except FormatError as err:  # only a diagnostic (a limit), never an exception of another kind
        assert "error[TQ" in str(err)
    else:
        assert format_source(once) == once
