"""The compiler: `.tqflow` source in, diagnostics and a plan out. Knows nothing of Redis."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqflow.compiler.context import Context
from tqflow.compiler.imports import resolve_flow_aliases, resolve_imports
from tqflow.compiler.limits import lower_limiters
from tqflow.compiler.lower import lower_flows
from tqflow.compiler.reachability import check_reachability
from tqflow.compiler.resolve import check_duplicates, collect_policies, lower_policies, resolve_uses
from tqflow.compiler.types import FlowTypes
from tqflow.dsl.collector import collector_paused
from tqflow.dsl.diagnostics import Diagnostics
from tqflow.dsl.parser import parse_recovering
from tqflow.dsl.source import Source, Span
from tqflow.plan import Plan, RetryPlan
from tqflow.plan.model import LimiterPlan

Pass = Callable[[Context], None]

# The passes, in order; each reads the context and reports into it. Lowering fills `ctx.flow_plans`.
PASSES: tuple[Pass, ...] = (
    resolve_uses,  # `use` lines -> Python modules read with `ast`
    resolve_imports,  # `import "x.tqflow" as x` -> its policies, limiters and flows
    collect_policies,  # named `retry` policies (duplicates)
    lower_policies,  # each named policy -> RetryPlan (checked even when unused)
    lower_limiters,  # each `limiter` -> LimiterPlan (duplicates; checked even when unused)
    check_duplicates,  # flows, jobs, params, outputs
    lower_flows,  # names, calls, types, settings, schedules, cycles -> FlowPlan
    resolve_flow_aliases,  # `flow x = imported.flow`
    check_reachability,  # jobs whose `after` can never hold
)


@dataclass(frozen=True)
class CompileResult:
    source: Source
    diagnostics: Diagnostics
    plan: Plan | None  # None when there were errors
    policies: dict[str, RetryPlan] = field(default_factory=dict)  # named retry policies, lowered
    limiters: dict[str, LimiterPlan] = field(default_factory=dict)  # declared limiters, by local name
    flow_types: dict[str, FlowTypes] = field(default_factory=dict)  # for sub-flow jobs of importing files

    @property
    def ok(self) -> bool:
        return self.plan is not None


def compile_source(source: Source, *, import_stack: tuple[str, ...] = ()) -> CompileResult:
    """Compile one file. `import_stack` lists the files importing this one (to report import cycles)."""
    with collector_paused():  # 50,000 jobs took twice as long with it
        try:
            return _compile(source, import_stack)
        except Exception as err:  # a compiler bug: a diagnostic to report, never a traceback
            return CompileResult(source, internal_error(source, err), None)


INTERNAL = "TQ0000"


def internal_error(source: Source, err: BaseException) -> Diagnostics:
    diagnostics = Diagnostics()
    where = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    diagnostics.error(
        INTERNAL,
        f"internal error, please report: {type(err).__name__}: {err}"[:500],
        Span.unknown(),
        source,
        notes=(f"raised{at} while checking {source.path}",),
        help="please report it at the tqflow issue tracker with the file that caused it",
    )
    return diagnostics


def _compile(source: Source, import_stack: tuple[str, ...]) -> CompileResult:
    diagnostics = Diagnostics()
    module = parse_recovering(source, diagnostics)
    if module is None:
        return CompileResult(source, diagnostics, None)
    ctx = Context(module=module, diagnostics=diagnostics, import_stack=import_stack)
    ctx.unresolved.update(module.broken)  # declarations with syntax errors: their names stay quiet
    for check in PASSES:
        check(ctx)
    if diagnostics.has_errors:
        return CompileResult(source, diagnostics, None, ctx.policy_plans, ctx.limiter_plans, ctx.flow_types)
    plan = Plan(source=Path(source.path).name, flows=dict(ctx.flow_plans))
    return CompileResult(source, diagnostics, plan, ctx.policy_plans, ctx.limiter_plans, ctx.flow_types)


def compile_file(path: str | Path) -> CompileResult:
    return compile_source(Source.from_file(path))


__all__ = ["INTERNAL", "CompileResult", "Plan", "compile_file", "compile_source", "internal_error"]
