"""What the compiler passes share: the parsed module, the diagnostics sink, resolved names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tqflow.compiler.python_tasks import ModuleInfo, TaskSignature
from tqflow.compiler.types import FlowTypes
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Diagnostics
from tqflow.dsl.source import Span
from tqflow.plan import FlowPlan, RetryPlan
from tqflow.plan.model import LimiterPlan


@dataclass
class Context:
    module: ast.Module
    diagnostics: Diagnostics
    modules: dict[str, ModuleInfo] = field(default_factory=dict)  # alias -> module
    imported_names: dict[str, str] = field(default_factory=dict)  # `use m.{X}` -> "m.X"
    unresolved: set[str] = field(default_factory=set)  # names bound by `use` lines that failed (no cascade)
    policies: dict[str, ast.RetryDecl] = field(default_factory=dict)
    imported_policies: dict[str, RetryPlan] = field(default_factory=dict)  # "alias.name" -> policy
    imported_flows: dict[str, FlowPlan] = field(default_factory=dict)  # "alias.flow" -> plan
    import_stack: tuple[str, ...] = ()  # files being compiled above this one (import cycles)
    policy_plans: dict[str, RetryPlan] = field(default_factory=dict)  # this file's named policies
    limiters: dict[str, ast.LimiterDecl] = field(default_factory=dict)  # this file's, by name
    limiter_plans: dict[str, LimiterPlan] = field(default_factory=dict)  # this file's, lowered
    imported_limiters: dict[str, LimiterPlan] = field(default_factory=dict)  # "alias.name" -> limiter
    # Filled by lowering: the task each job calls, and each flow's plan.
    signatures: dict[tuple[str, str], TaskSignature] = field(default_factory=dict)
    flow_plans: dict[str, FlowPlan] = field(default_factory=dict)
    # Filled per flow by the reference pass: job -> upstream jobs whose output it reads / awaits.
    data_deps: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    after_deps: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    dep_spans: dict[tuple[str, str, str], Span] = field(default_factory=dict)  # (flow, job, upstream)
    # Sub-flows: each flow's parameter and output types (this file's, and imported ones as "x.flow"), the
    # flows being typed now (a cycle is typed Any, reported as TQ0401) and those on a sub-flow cycle.
    flow_types: dict[str, FlowTypes] = field(default_factory=dict)
    typing_flows: set[str] = field(default_factory=set)
    subflow_cycles: set[str] = field(default_factory=set)
    pytypes: Any = None  # compiler.pytypes.PyTypes, made on first use (names in task annotations)

    @property
    def source(self) -> Any:
        return self.module.source

    def error(self, code: str, message: str, span: Span, **extra: Any) -> None:
        self.diagnostics.error(code, message, span, self.module.source, **extra)

    def warning(self, code: str, message: str, span: Span, **extra: Any) -> None:
        self.diagnostics.warning(code, message, span, self.module.source, **extra)
