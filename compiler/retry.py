"""Pass helper: lower a retry specification (named policy, call, `none`) to a `RetryPlan`."""

from __future__ import annotations

from typing import Any

from tqflow.compiler.context import Context
from tqflow.compiler.plan import RetryPlan
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import did_you_mean

POLICY_KINDS = ("fixed", "exponential", "schedule", "none")
JITTERS = ("none", "full", "equal")


def lower_retry(ctx: Context, spec: ast.RetrySpec, seen: frozenset[str] = frozenset()) -> RetryPlan:
    fields: dict[str, Any] = {}
    policy = spec.policy
    if isinstance(policy, ast.Name):
        if policy.id == "none":
            fields["kind"] = "none"
        elif policy.id in ctx.policies and policy.id not in seen:
            base = lower_retry(ctx, ctx.policies[policy.id].spec, seen | {policy.id})
            fields.update(base.model_dump())
        else:
            ctx.error(
                "TQ0205",
                f"unknown retry policy `{policy.id}`",
                policy.span,
                help=did_you_mean(policy.id, [*ctx.policies, *POLICY_KINDS]),
            )
    else:
        fields.update(_policy_call(ctx, policy))
    for option in spec.options:
        if option.name == "attempts":
            attempts = _int(ctx, option.value)
            if attempts is not None and attempts < 1:
                ctx.error(
                    "TQ0501",
                    f"`attempts={attempts}`: attempts counts every try, the first included",
                    option.value.span,
                    help="use attempts=1 for a single try without retries",
                )
            elif attempts is not None:
                fields["attempts"] = attempts
        else:
            ctx.error(
                "TQ0501",
                f"unknown retry option `{option.name}`",
                option.name_span,
                help=did_you_mean(option.name or "", ["attempts"]),
            )
    if fields.get("kind", "none") != "none" and "attempts" not in fields:
        fields["attempts"] = 3
    return RetryPlan(**fields)


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
        else:
            fields["schedule_ms"] = [_duration(ctx, d) for d in delays.items]
            fields["attempts"] = len(delays.items) + 1
    for name, value in named.items():
        ctx.error("TQ0501", f"`{kind}(…)` has no option `{name}`", value.span)
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
    if isinstance(expr, ast.Literal) and expr.kind == "str" and str(expr.value).endswith("%"):
        return str(expr.value)
    ctx.error("TQ0501", 'jitter is `full`, `equal`, `none` or a percentage like "10%"', expr.span)
    return "none"
