"""Pass helper: infer the type of an expression and check it where a type is expected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tqflow.compiler.context import Context
from tqflow.compiler.types import (
    ANY,
    BOOL,
    DATE,
    DATETIME,
    DURATION,
    FLOAT,
    INT,
    NONE,
    STR,
    Ty,
    assignable,
    comparable,
    list_of,
    literal_fits,
    literal_value_fits,
    orderable,
)
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Label, did_you_mean
from tqflow.dsl.source import Span

LITERAL_TYPES = {
    "str": STR,
    "int": INT,
    "float": FLOAT,
    "bool": BOOL,
    "none": NONE,
    "duration": DURATION,
    "date": DATE,
    "datetime": DATETIME,
}
RUN_TYPES = {"id": STR, "date": DATE, "time": DATETIME}


@dataclass
class TypeEnv:
    params: dict[str, Ty] = field(default_factory=dict)
    jobs: dict[str, Ty] = field(default_factory=dict)  # a job's `.out`
    job_spans: dict[str, Span] = field(default_factory=dict)
    variables: dict[str, Ty] = field(default_factory=dict)
    param_names: set[str] = field(default_factory=set)  # the keys above, as sets shared by every job
    job_names: set[str] = field(default_factory=set)
    fields: Callable[[str], dict[str, Ty] | None] = lambda name: None  # a model's fields (PyTypes)


def infer(ctx: Context, expr: ast.Expr, env: TypeEnv) -> Ty:
    match expr:
        case ast.Literal(kind=kind):
            return LITERAL_TYPES.get(kind, ANY)
        case ast.FString():
            return STR
        case ast.ListExpr(items=items):
            types = {infer(ctx, i, env) for i in items}
            return list_of(types.pop() if len(types) == 1 else ANY)
        case ast.DictExpr(items=items):
            keys = {infer(ctx, key, env) for key, _ in items}
            values = {infer(ctx, value, env) for _, value in items}
            key_type = keys.pop() if len(keys) == 1 else STR
            return Ty("dict", (key_type, values.pop() if len(values) == 1 else ANY))
        case ast.Not(value=value):
            infer(ctx, value, env)
            return BOOL
        case ast.BoolOp(values=values):
            for value in values:
                infer(ctx, value, env)
            return BOOL
        case ast.BinOp():
            return _binary(ctx, expr, env)
        case ast.Index(value=value, index=index):
            return _index(infer(ctx, value, env), infer(ctx, index, env))
        case ast.Attr():
            return _attr(ctx, expr, env)
        case ast.Name(id=name):
            return env.variables.get(name, ANY)
    return ANY


def _attr(ctx: Context, expr: ast.Attr, env: TypeEnv) -> Ty:
    base = expr.value
    if isinstance(base, ast.Name) and base.id not in env.variables:
        if base.id == "params":
            return env.params.get(expr.attr, ANY)
        if base.id == "run":
            return RUN_TYPES.get(expr.attr, ANY)
        if base.id in env.jobs and expr.attr == "out":
            return env.jobs[base.id]
    owner = infer(ctx, base, env)
    if owner.name == "dict" and len(owner.args) == 2:
        return owner.args[1]
    fields = env.fields(owner.name) if not owner.known else None
    if fields is not None:
        if expr.attr in fields:
            return fields[expr.attr]
        ctx.error(
            "TQ0305",
            f"`{owner.name}` has no field `{expr.attr}`",
            expr.attr_span,
            label=f"not a field of {owner.name}",
            notes=(f"{owner.name} has: {', '.join(sorted(fields)) or 'no fields'}",),
            help=did_you_mean(expr.attr, fields),
        )
        return ANY
    if owner.known and owner.name != "None":
        ctx.error(
            "TQ0305",
            f"a value of type {owner} has no field `{expr.attr}`",
            expr.attr_span,
            label=f"this is a {owner}",
            help="fields can be read from dicts and objects (pydantic models, dataclasses)",
        )
    return ANY


def _index(owner: Ty, key: Ty) -> Ty:
    if owner.name == "list":
        return owner.element()
    if owner.name == "dict" and len(owner.args) == 2:
        return owner.args[1]
    del key
    return ANY


_ARITH = {
    ("Date", "+", "Duration"): DATE,
    ("Date", "-", "Duration"): DATE,
    ("Date", "-", "Date"): DURATION,
    ("DateTime", "+", "Duration"): DATETIME,
    ("DateTime", "-", "Duration"): DATETIME,
    ("DateTime", "-", "DateTime"): DURATION,
    ("Duration", "+", "Duration"): DURATION,
    ("Duration", "-", "Duration"): DURATION,
    ("Duration", "+", "Date"): DATE,
    ("Duration", "+", "DateTime"): DATETIME,
    ("Int", "+", "Int"): INT,
    ("Int", "-", "Int"): INT,
    ("Str", "+", "Str"): STR,
}
_NUMBERS = ("Int", "Float", "Decimal")


def _binary(ctx: Context, expr: ast.BinOp, env: TypeEnv) -> Ty:
    left, right = infer(ctx, expr.left, env), infer(ctx, expr.right, env)
    if expr.op not in ("+", "-"):
        equality = expr.op in ("==", "!=")
        if not (comparable(left, right) if equality else orderable(left, right)):
            always = "always false" if expr.op == "==" else "always true"
            ctx.error(
                "TQ0305",
                f"comparing {left} with {right}: {always}"
                if equality
                else f"cannot order {left} and {right}",
                expr.span,
                labels=(Label(expr.left.span, f"{left}"), Label(expr.right.span, f"{right}")),
                help="compare values of one type",
            )
        return BOOL
    if not (left.known and right.known):
        return ANY
    if (left.name, expr.op, right.name) in _ARITH:
        return _ARITH[(left.name, expr.op, right.name)]
    if left.name in _NUMBERS and right.name in _NUMBERS:
        return FLOAT if "Float" in (left.name, right.name) else Ty("Decimal")
    if left.name == right.name == "list" and expr.op == "+":
        return left
    ctx.error(
        "TQ0305",
        f"cannot apply `{expr.op}` to {left} and {right}",
        expr.span,
        labels=(Label(expr.left.span, f"{left}"), Label(expr.right.span, f"{right}")),
        help="`+` and `-` work on numbers, on dates and durations, and `+` on strings and lists",
    )
    return ANY


def check_value(
    ctx: Context, expr: ast.Expr, target: Ty, env: TypeEnv, what: str, notes: tuple[str, ...] = ()
) -> None:
    """Report TQ0304 when `expr` certainly cannot be a `target` (for `what`: "argument `x` of `t`")."""
    actual = infer(ctx, expr, env)
    one_of = literal_value_fits(expr, target)
    if one_of is True or (one_of is None and (assignable(actual, target) or literal_fits(expr, target))):
        return
    if one_of is False and isinstance(expr, ast.Literal):
        values = ", ".join(repr(v) for v in target.required().values)
        ctx.error("TQ0304", f"{what} is one of {values}, not {expr.text}", expr.span, notes=notes)
        return
    labels: tuple[Label, ...] = ()
    upstream = _upstream_job(expr, env)
    if upstream is not None and upstream in env.job_spans:
        labels = (Label(env.job_spans[upstream], f"`{upstream}` returns {env.jobs[upstream]}"),)
    ctx.error(
        "TQ0304",
        f"{what} expects {target}, but this is {actual}",
        expr.span,
        label=f"this is {actual}",
        labels=labels,
        notes=notes,
        help=_conversion_help(actual, target),
    )


def _upstream_job(expr: ast.Expr, env: TypeEnv) -> str | None:
    while isinstance(expr, ast.Attr | ast.Index):
        if isinstance(expr, ast.Attr) and isinstance(expr.value, ast.Name) and expr.value.id in env.jobs:
            return expr.value.id
        expr = expr.value
    return None


def _conversion_help(actual: Ty, target: Ty) -> str | None:
    if actual.name == "Str" and target.name in ("Int", "Float"):
        return "write the number without quotes"
    if actual.name == "Str" and target.name in ("Date", "DateTime"):
        return "write a date like 2026-01-31 (no quotes), or an expression like run.date - 1d"
    if actual.name == "None":
        return f"declare the parameter as `{target.name} | None` in Python to accept none"
    if actual.optional and not target.optional:
        return "it may be none: pass a value that is never none, or let the Python parameter accept None"
    if target.name == "list" and actual.name != "list":
        return "wrap the value in a list, or fan out over the list with `for x in …`"
    return None
