"""The compiler's type verdicts against real mypy (--strict): each case is a job's call written in
`.tqflow` and the same call written in Python with values of the same types; both must agree on
whether it is an error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tqflow.compiler import compile_file

TYPES = '''"""Types imported by the tasks module."""

from typing import Literal, NewType, TypeAlias

Counts = list[int]
UserId = NewType("UserId", int)
Mode: TypeAlias = Literal["fast", "safe"]
'''

TASKS = '''"""Tasks for the mypy comparison (a local `task` decorator keeps mypy's work small)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .types import Counts, Mode, UserId

F = TypeVar("F", bound=Callable[..., object])


def task(fn: F) -> F:
    return fn


@dataclass
class Report:
    rows: int
    label: str | None = None


@task
def maybe() -> int | None:
    return None


@task
def need(n: int) -> int:
    return n


@task
def need_opt(n: int | None) -> int:
    return n or 0


@task
def need_float(x: float) -> float:
    return x


@task
def first(n: int, /, m: int = 0) -> int:
    return n + m


@task
def counts() -> Counts:
    return [1]


@task
def per_user(user: UserId, mode: Mode = "fast") -> Report:
    return Report(rows=user)


@task
def user_of(n: int) -> UserId:
    return UserId(n)


@task
def weights(by_name: dict[str, int]) -> Report:
    return Report(rows=len(by_name))


@task
def texts(items: list[str]) -> int:
    return len(items)
'''

# (tqflow argument list, Python argument list) for a call of the named task. Names available on both
# sides: params n (Int?), m (Int), s (Str); jobs maybe_out (int | None), count_out (Counts),
# user_out (UserId), report_out (Report).
CASES = [
    ("need", "n=params.n", "n=n"),
    ("need", "n=params.m", "n=m"),
    ("need", "n=mb.out", "n=maybe_out"),
    ("need_opt", "n=mb.out", "n=maybe_out"),
    ("need_opt", "n=none", "n=None"),
    ("need", "n=none", "n=None"),
    ("need_float", "x=params.m", "x=m"),
    ("need", 'n="3"', 'n="3"'),
    ("first", "n=1", "n=1"),
    ("first", "m=2", "m=2"),
    ("need", "n=ct.out", "n=count_out"),
    ("texts", "items=ct.out", "items=count_out"),
    ("per_user", "user=1", "user=1"),
    ("per_user", "user=us.out", "user=user_out"),
    ("need", "n=us.out", "n=user_out"),
    ("per_user", 'user=us.out, mode="slow"', 'user=user_out, mode="slow"'),
    ("per_user", 'user=us.out, mode="safe"', 'user=user_out, mode="safe"'),
    ("per_user", "user=us.out, mode=params.s", "user=user_out, mode=s"),
    ("weights", 'by_name={"a": 1}', 'by_name={"a": 1}'),
    ("weights", 'by_name={"a": "one"}', 'by_name={"a": "one"}'),
    ("need", "n=rp.out.rows", "n=report_out.rows"),
    ("need", "n=rp.out.label", "n=report_out.label"),
    ("need", "n=rp.out.rowz", "n=report_out.rowz"),
    ("texts", 'items=["a", "b"]', 'items=["a", "b"]'),
    ("texts", "items=[1, 2]", "items=[1, 2]"),
]


def tqflow_verdicts(folder: Path) -> list[bool]:
    verdicts = []
    for index, (name, args, _) in enumerate(CASES):
        path = folder / f"case{index}.tqflow"
        path.write_text(
            'use pkg.tasks as t\n\nflow f {\n  params {\n    n: Int?\n    m: Int = 1\n    s: Str = "x"\n  }\n'
            "  job mb = t.maybe()\n  job ct = t.counts()\n  job us = t.user_of(n=1)\n"
            "  job rp = t.per_user(user=us.out)\n"
            f"  job x = t.{name}({args})\n}}\n"
        )
        result = compile_file(path)
        wrong = [d for d in result.diagnostics if d.code.startswith("TQ03") and d.span.line == 13]
        others = [d for d in result.diagnostics if d not in wrong]
        assert others == [], [d.message for d in others]
        verdicts.append(bool(wrong))
    return verdicts


def mypy_verdicts(folder: Path) -> list[bool]:
    lines = [
        "from pkg.tasks import *  # noqa: F403",
        "from pkg.types import Counts, UserId",
        "",
    ]
    starts = []
    for index, (name, _, args) in enumerate(CASES):
        lines.append(
            f"def case{index}(n: int | None, m: int, s: str, maybe_out: int | None, count_out: Counts,"
            " user_out: UserId, report_out: Report) -> None:"
        )
        starts.append(len(lines) + 1)
        lines.append(f"    {name}({args})")
    (folder / "calls.py").write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(folder / ".mc"),
            "--follow-imports",
            "silent",
            "calls.py",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    failing = {int(m.group(1)) for m in re.finditer(r"^calls\.py:(\d+): error", done.stdout, re.MULTILINE)}
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return [line in failing for line in starts]


def test_type_verdicts_agree_with_mypy(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "types.py").write_text(TYPES)
    (package / "tasks.py").write_text(TASKS)
    ours, theirs = tqflow_verdicts(tmp_path), mypy_verdicts(tmp_path)
    disagree = [
        (CASES[i][0], CASES[i][1], ours[i], theirs[i]) for i in range(len(CASES)) if ours[i] != theirs[i]
    ]
    assert disagree == []
    assert sum(theirs) >= 10  # the cases do exercise errors
