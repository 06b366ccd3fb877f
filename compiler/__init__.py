"""The compiler: `.tqflow` source in, diagnostics and a plan out. Knows nothing of Redis."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqflow.compiler.context import Context
from tqflow.compiler.lower import lower_flows
from tqflow.compiler.plan import Plan
from tqflow.compiler.resolve import check_duplicates, collect_policies, resolve_uses
from tqflow.dsl.diagnostics import Diagnostics
from tqflow.dsl.parser import parse
from tqflow.dsl.source import Source

Pass = Callable[[Context], None]

# Checks that run before lowering, in order; each reads the context and reports into it.
PASSES: tuple[Pass, ...] = (resolve_uses, collect_policies, check_duplicates)


@dataclass(frozen=True)
class CompileResult:
    source: Source
    diagnostics: Diagnostics
    plan: Plan | None  # None when there were errors

    @property
    def ok(self) -> bool:
        return self.plan is not None


def compile_source(source: Source) -> CompileResult:
    diagnostics = Diagnostics()
    module = parse(source, diagnostics)
    if module is None:
        return CompileResult(source, diagnostics, None)
    ctx = Context(module=module, diagnostics=diagnostics)
    for check in PASSES:
        check(ctx)
    flows = lower_flows(ctx)
    if diagnostics.has_errors:
        return CompileResult(source, diagnostics, None)
    plan = Plan(source=Path(source.path).name, flows=flows)
    return CompileResult(source, diagnostics, plan)


def compile_file(path: str | Path) -> CompileResult:
    return compile_source(Source.from_file(path))


__all__ = ["CompileResult", "Plan", "compile_file", "compile_source"]
