"""Pass helper: check the names in an expression and lower it to the plan's expression tree.

Tree forms (evaluated by `tqflow.runtime.expressions`, never by `eval`):
  {"lit": v}  {"dur": ms}  {"param": name}  {"out": job}  {"var": name}  {"run": "id"|"date"|"time"}
  {"attr": [tree, name]}  {"index": [tree, tree]}  {"op": "+", "args": [a, b]}  {"not": tree}
  {"and": [...]}  {"or": [...]}  {"fstr": [str | tree, ...]}  {"list": [...]}  {"dict": [[k, v], ...]}
  {"status": [job, "succeeded"|"failed"|"done"|"skipped"]}  {"any": [...]}  {"all": [...]}
  {"date": "2026-01-31"}  {"datetime": "2026-01-31T09:00:00+01:00"}   (date literals, ISO text)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tqflow.compiler.context import Context
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import did_you_mean
from tqflow.dsl.source import Span

RUN_FIELDS = ("id", "date", "time")
PYTHON_SPELLINGS = {"True": "true", "False": "false", "None": "none", "null": "none", "nil": "none"}
STATUSES = ("succeeded", "failed", "done", "skipped")
STATUS_SYNONYMS = {  # words other tools use for a status
    "finished": "done",
    "complete": "done",
    "completed": "done",
    "ended": "done",
    "over": "done",
    "success": "succeeded",
    "successful": "succeeded",
    "succeed": "succeeded",
    "ok": "succeeded",
    "passed": "succeeded",
    "failure": "failed",
    "fail": "failed",
    "error": "failed",
    "errored": "failed",
    "skip": "skipped",
}


def _closest(word: str, candidates: tuple[str, ...]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


STATUS_FUNCTIONS = {  # name -> (combinator, status)
    "any_failed": ("any", "failed"),
    "all_failed": ("all", "failed"),
    "any_succeeded": ("any", "succeeded"),
    "all_succeeded": ("all", "succeeded"),
    "all_done": ("all", "done"),
    "any_done": ("any", "done"),
}


@dataclass
class Scope:
    """What names an expression may use, and what it was found to read."""

    flow: str
    params: set[str]
    jobs: set[str]
    variables: set[str] = field(default_factory=set)
    reads: dict[str, Span] = field(default_factory=dict)  # jobs whose .out is read, first span


def lower(ctx: Context, expr: ast.Expr, scope: Scope) -> dict[str, Any]:
    match expr:
        case ast.Literal(kind="duration"):
            return {"dur": expr.value}
        case ast.Literal(kind="date" | "datetime"):
            return {expr.kind: expr.value}
        case ast.Literal(kind="percent"):
            ctx.error("TQ0502", "a percentage only makes sense as a retry `jitter=`", expr.span)
            return {"lit": None}
        case ast.Literal():
            return {"lit": expr.value}
        case ast.FString(parts=parts):
            return {"fstr": [p if isinstance(p, str) else lower(ctx, p, scope) for p in parts]}
        case ast.ListExpr(items=items):
            return {"list": [lower(ctx, i, scope) for i in items]}
        case ast.DictExpr(items=items):
            return {"dict": [[lower(ctx, k, scope), lower(ctx, v, scope)] for k, v in items]}
        case ast.Not(value=value):
            return {"not": lower(ctx, value, scope)}
        case ast.BoolOp(op=op, values=values):
            return {op: [lower(ctx, v, scope) for v in values]}
        case ast.BinOp(op=op, left=left, right=right):
            return {"op": op, "args": [lower(ctx, left, scope), lower(ctx, right, scope)]}
        case ast.Index(value=value, index=index):
            return {"index": [lower(ctx, value, scope), lower(ctx, index, scope)]}
        case ast.Attr():
            return _lower_attr(ctx, expr, scope)
        case ast.Name(id=name):
            return _lower_name(ctx, expr, name, scope)
        case ast.FuncCall():
            ctx.error("TQ0202", f"`{expr.func}(…)` can only be used in an `after` condition", expr.span)
            return {"lit": None}
    raise AssertionError(f"unhandled expression {expr!r}")  # pragma: no cover


def _lower_attr(ctx: Context, expr: ast.Attr, scope: Scope) -> dict[str, Any]:
    base = expr.value
    if isinstance(base, ast.Name) and base.id == "params" and base.id not in scope.variables:
        if expr.attr not in scope.params:
            ctx.error(
                "TQ0204",
                f"flow `{scope.flow}` has no parameter `{expr.attr}`",
                expr.attr_span,
                help=did_you_mean(expr.attr, scope.params),
            )
        return {"param": expr.attr}
    if isinstance(base, ast.Name) and base.id == "run" and base.id not in scope.variables:
        if expr.attr not in RUN_FIELDS:
            ctx.error(
                "TQ0207",
                f"`run` has no field `{expr.attr}`",
                expr.attr_span,
                help=did_you_mean(expr.attr, RUN_FIELDS) or "use run.id, run.date or run.time",
            )
        return {"run": expr.attr}
    if isinstance(base, ast.Name) and base.id in scope.jobs and base.id not in scope.variables:
        if expr.attr != "out":
            ctx.error(
                "TQ0207",
                f"`{base.id}.{expr.attr}` is not a value; read the job's result as `{base.id}.out`",
                expr.span,
                help=f"did you mean `{base.id}.out`?"
                if did_you_mean(expr.attr, ["out"])
                else "status names like `.failed` belong in an `after` condition",
            )
        scope.reads.setdefault(base.id, expr.span)
        return {"out": base.id}
    return {"attr": [lower(ctx, base, scope), expr.attr]}


def _lower_name(ctx: Context, expr: ast.Name, name: str, scope: Scope) -> dict[str, Any]:
    if name in scope.variables:
        return {"var": name}
    if name in scope.jobs:
        ctx.error(
            "TQ0207", f"job `{name}` used as a value", expr.span, help=f"read its result as `{name}.out`"
        )
        return {"out": name}
    if name in ("params", "run"):
        ctx.error(
            "TQ0207", f"`{name}` needs a field, like `{name}.{'x' if name == 'params' else 'id'}`", expr.span
        )
        return {"lit": None}
    candidates = [*scope.jobs, *scope.variables, "params", "run"]
    spelled = PYTHON_SPELLINGS.get(name)
    param = name if name in scope.params else _closest(name, tuple(sorted(scope.params)))
    if spelled:
        help_text: str | None = f"write `{spelled}`"
    elif name in scope.params or (param and not did_you_mean(name, candidates)):
        help_text = f"did you mean `params.{param}`? (parameters are read as `params.NAME`)"
    elif name in RUN_FIELDS:
        help_text = f"did you mean `run.{name}`?"
    elif name == "event":
        help_text = 'an event\'s data is `event` only in a `schedule event "NAME"` (its params and key)'
    else:
        help_text = did_you_mean(name, candidates)
    ctx.error(
        "TQ0202",
        f"unknown name `{name}`",
        expr.span,
        label="not a job, parameter or variable",
        help=help_text,
    )
    return {"lit": None}


def lower_condition(ctx: Context, expr: ast.Expr, scope: Scope, waits: dict[str, Span]) -> dict[str, Any]:
    """Lower an `after` condition: a status expression over upstream jobs (recorded in `waits`)."""
    match expr:
        case ast.Name(id=name):
            return _status(ctx, name, "succeeded", expr.span, scope, waits)
        case ast.Attr(value=ast.Name(id=name), attr=status) if status in STATUSES:
            return _status(ctx, name, status, expr.span, scope, waits)
        case ast.Attr(value=ast.Name(id=name), attr=status) if name in scope.jobs:
            near = _closest(status.lower(), (*STATUSES, *STATUS_SYNONYMS))
            meant = STATUS_SYNONYMS.get(status.lower()) or STATUS_SYNONYMS.get(near or "", near)
            ctx.error(
                "TQ0207",
                f"`{status}` is not a job status",
                expr.attr_span,
                label="a status is succeeded, failed, done or skipped",
                help=f"did you mean `{meant}`?" if meant else None,
            )
            # Go on as if the status were the one meant, so that the mistake is one error (no "job can
            # never run" after it).
            return _status(ctx, name, meant or "done", expr.span, scope, waits)
        case ast.Not(value=value):
            return {"not": lower_condition(ctx, value, scope, waits)}
        case ast.BoolOp(op=op, values=values):
            return {op: [lower_condition(ctx, v, scope, waits) for v in values]}
        case ast.FuncCall(func=func, args=args) if func in STATUS_FUNCTIONS:
            combinator, status = STATUS_FUNCTIONS[func]
            items = []
            for arg in args:
                if isinstance(arg, ast.Name):
                    items.append(_status(ctx, arg.id, status, arg.span, scope, waits))
                else:
                    ctx.error("TQ0207", f"`{func}` takes job names", arg.span)
            return {combinator: items}
        case ast.FuncCall(func=func):
            ctx.error(
                "TQ0202",
                f"unknown status function `{func}`",
                expr.span,
                help=did_you_mean(func, STATUS_FUNCTIONS),
            )
            return {"lit": False}
    ctx.error(
        "TQ0207",
        "an `after` condition names jobs and their status, like `load`, `load.failed`, `any_failed(a, b)`",
        expr.span,
    )
    return {"lit": False}


def _status(
    ctx: Context, job: str, status: str, span: Span, scope: Scope, waits: dict[str, Span]
) -> dict[str, Any]:
    if job not in scope.jobs:
        ctx.error(
            "TQ0203", f"flow `{scope.flow}` has no job `{job}`", span, help=did_you_mean(job, scope.jobs)
        )
    waits.setdefault(job, span)
    return {"status": [job, status]}
