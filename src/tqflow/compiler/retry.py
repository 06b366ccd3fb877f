"""Pass helper: lower a retry specification (named policy, call, `none`) to a `RetryPlan`."""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import ValidationError

from tqflow.compiler.context import Context
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Label, did_you_mean
from tqflow.dsl.source import Span
from tqflow.plan import RetryPlan, RetryRule
from tqflow.plan.model import JITTERS, check_attempts, check_jitter

POLICY_KINDS = ("fixed", "exponential", "schedule", "none")


def lower_retry(
    ctx: Context, spec: ast.RetrySpec | ast.RetryBlock, seen: frozenset[str] = frozenset()
) -> RetryPlan:
    if isinstance(spec, ast.RetryBlock):
        return _lower_block(ctx, spec, seen)
    fields: dict[str, Any] = {}
    policy = spec.policy
    if isinstance(policy, ast.Name):
        if policy.id == "none":
            fields["kind"] = "none"
        elif policy.id in ctx.policy_plans:
            fields.update(ctx.policy_plans[policy.id].model_dump())
        elif policy.id in ctx.policies and policy.id not in seen:
            base = lower_retry(ctx, ctx.policies[policy.id].spec, seen | {policy.id})
            ctx.policy_plans[policy.id] = base
            fields.update(base.model_dump())
        elif policy.id in ctx.policies:
            ctx.error("TQ0501", f"retry policy `{policy.id}` refers to itself", policy.span)
        elif policy.id in ctx.imported_policies:
            fields.update(ctx.imported_policies[policy.id].model_dump())
        elif policy.id in ctx.unresolved or policy.id.partition(".")[0] in ctx.unresolved:
            pass  # declared by a line with a syntax error, or imported by a failed line: reported there
        else:
            ctx.error(
                "TQ0205",
                f"unknown retry policy `{policy.id}`",
                policy.span,
                help=did_you_mean(policy.id, [*ctx.policies, *ctx.imported_policies, *POLICY_KINDS]),
            )
    else:
        fields.update(_policy_call(ctx, policy))
    for option in spec.options:
        if option.name == "attempts":
            attempts = _int(ctx, option.value)
            if attempts is None:
                continue
            try:
                fields["attempts"] = check_attempts(attempts)  # the plan model's rule
            except ValueError:
                ctx.error(
                    "TQ0501",
                    f"`attempts={attempts}`: attempts counts every try, the first included",
                    option.value.span,
                    help="use attempts=1 for a single try without retries",
                )
        else:
            ctx.error(
                "TQ0501",
                f"unknown retry option `{option.name}`",
                option.name_span,
                help=did_you_mean(option.name or "", ["attempts"]),
            )
    if fields.get("kind", "none") != "none" and "attempts" not in fields:
        fields["attempts"] = 3
    return _plan(ctx, fields, spec.span)


def _plan(ctx: Context, fields: dict[str, Any], span: Span) -> RetryPlan:
    """The RetryPlan of `fields`; what the model rejects (plan/model.py owns the rules) becomes a
    TQ0501 diagnostic at `span` (the checks above report most of it at a narrower span first)."""
    try:
        return RetryPlan(**fields)
    except ValidationError as err:
        for problem in err.errors():
            ctx.error("TQ0501", str(problem["msg"]).removeprefix("Value error, "), span)
        return RetryPlan()


def _lower_block(ctx: Context, block: ast.RetryBlock, seen: frozenset[str]) -> RetryPlan:
    """`retry { on A -> p; never B; else -> q }`: `else` gives the top-level fields, `on` the rules."""
    fields: dict[str, Any] = {}
    rules: list[RetryRule] = []
    never: list[str] = []
    on_names: dict[str, ast.Name] = {}
    never_names: dict[str, ast.Name] = {}
    for rule in block.rules:
        if rule.kind == "else" and rule.spec is not None:
            if "kind" in fields:
                ctx.error("TQ0501", "a retry block has one `else` rule", rule.span)
            fields.update(lower_retry(ctx, rule.spec, seen).model_dump())
            continue
        names = [resolve_exception(ctx, e) for e in rule.exceptions]
        table = on_names if rule.kind == "on" else never_names
        for name, node in zip(names, rule.exceptions, strict=True):
            if name is not None:
                table.setdefault(name, node)
        resolved = [n for n in names if n is not None]
        if rule.kind == "never":
            never.extend(resolved)
        elif rule.spec is not None:
            policy = lower_retry(ctx, rule.spec, seen)
            rules.append(RetryRule(on=resolved, policy=policy.model_copy(update={"rules": [], "never": []})))
    for name, node in never_names.items():
        if name in on_names:
            ctx.error(
                "TQ0503",
                f"exception `{node.id}` is both retried (`on`) and never retried (`never`)",
                node.span,
                label="never retried here",
                labels=(Label(on_names[name].span, "retried here"),),
                help="remove it from one of the two rules",
            )
    fields.pop("rules", None)
    fields.pop("never", None)
    return _plan(ctx, {**fields, "rules": rules, "never": sorted(set(never))}, block.span)


def resolve_exception(ctx: Context, node: ast.Name) -> str | None:
    """The qualified name (`module.Class`) of an exception named in a retry block, or None (reported)."""
    name = node.id
    if name in ctx.imported_names:
        return ctx.imported_names[name]
    alias, _, attr = name.rpartition(".")
    if alias and alias in ctx.modules:
        module = ctx.modules[alias]
        if attr not in module.names:
            ctx.error(
                "TQ0102",
                f"`{module.name}` has no top-level name `{attr}`",
                node.span,
                help=did_you_mean(attr, module.names),
            )
            return None
        return f"{module.name}.{attr}"
    if not alias and _is_builtin_exception(name):
        return f"builtins.{name}"
    if name in ctx.unresolved or alias in ctx.unresolved:
        return None  # its `use` line failed and was reported
    if alias:
        ctx.error(
            "TQ0208",
            f"unknown exception `{name}`: `{alias}` is not a module bound by `use`",
            node.span,
            help=did_you_mean(alias, ctx.modules) or f"add `use {alias}` or `use {alias}.{{{attr}}}`",
        )
        return None
    candidates = [*ctx.imported_names, *BUILTIN_EXCEPTIONS]
    ctx.error(
        "TQ0208",
        f"unknown exception `{name}`",
        node.span,
        label="not imported by `use` and not a Python built-in exception",
        help=did_you_mean(name, candidates) or f"bind it with `use your.module.{{{name}}}`",
    )
    return None


BUILTIN_EXCEPTIONS = tuple(
    n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)
)


def _is_builtin_exception(name: str) -> bool:
    return name in BUILTIN_EXCEPTIONS


def _policy_call(ctx: Context, call: ast.Call) -> dict[str, Any]:
    kind = call.func
    if kind not in POLICY_KINDS:
        ctx.error(
            "TQ0205",
            f"unknown retry policy `{kind}`",
            call.span,
            help=did_you_mean(kind, [*POLICY_KINDS, *ctx.policies]),
        )
        return {}
    positional = [a.value for a in call.args if a.name is None]
    named = {a.name: a.value for a in call.args if a.name is not None}
    name_spans = {a.name: a.name_span for a in call.args if a.name is not None}
    fields: dict[str, Any] = {"kind": kind}
    if kind in ("fixed", "exponential"):
        if not positional:
            ctx.error("TQ0501", f"`{kind}(…)` needs a delay, like `{kind}(30s)`", call.span)
        else:
            fields["delay_ms"] = _duration(ctx, positional[0])
    if kind == "exponential":
        if "factor" in named:
            factor = named.pop("factor")
            if isinstance(factor, ast.Literal) and factor.kind in ("int", "float"):
                fields["factor"] = float(factor.value)  # type: ignore[arg-type]
            else:
                ctx.error("TQ0501", "`factor` must be a number", factor.span)
        if "max" in named:
            fields["max_delay_ms"] = _duration(ctx, named.pop("max"))
        if "jitter" in named:
            fields["jitter"] = _jitter(ctx, named.pop("jitter"))
    if kind == "schedule":
        delays = positional[0] if positional else None
        if not isinstance(delays, ast.ListExpr) or not delays.items:
            ctx.error(
                "TQ0501", "`schedule(…)` takes a list of durations, like `schedule([1s, 5s, 1m])`", call.span
            )
            fields["kind"] = "none"  # reported: no schedule to build
        else:
            fields["schedule_ms"] = [_duration(ctx, d) for d in delays.items]
            fields["attempts"] = len(delays.items) + 1
    options = {"exponential": ("factor", "max", "jitter")}.get(kind, ())
    for name in named:
        ctx.error(
            "TQ0501",
            f"`{kind}(…)` has no option `{name}`",
            name_spans[name],
            help=did_you_mean(name, options) or (f"options are {', '.join(options)}" if options else None),
        )
    return fields


def _duration(ctx: Context, expr: ast.Expr) -> int:
    if isinstance(expr, ast.Literal) and expr.kind == "duration":
        return int(str(expr.value))
    ctx.error("TQ0502", "expected a duration like `30s`", expr.span)
    return 0


def _int(ctx: Context, expr: ast.Expr) -> int | None:
    if isinstance(expr, ast.Literal) and expr.kind == "int":
        return int(str(expr.value))
    ctx.error("TQ0502", "expected an integer", expr.span)
    return None


def _jitter(ctx: Context, expr: ast.Expr) -> str:
    if isinstance(expr, ast.Name) and expr.id in JITTERS:
        return expr.id
    if isinstance(expr, ast.Literal) and expr.kind == "percent":
        try:
            return check_jitter(expr.text)  # the plan model's rule
        except ValueError:
            ctx.error("TQ0501", "a jitter percentage is between 0% and 100%", expr.span)
            return "none"
    if isinstance(expr, ast.Literal) and expr.kind == "str" and str(expr.value).endswith("%"):
        return str(expr.value)
    ctx.error("TQ0501", "jitter is `full`, `equal`, `none` or a percentage like `10%`", expr.span)
    return "none"
