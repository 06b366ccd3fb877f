"""Evaluate the plan's expression trees (see `compiler.expressions` for the forms). No `eval`."""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tqflow.errors import PlanError


class ExpressionError(PlanError):
    """An expression could not be evaluated with the values it was given (a missing field …)."""


@dataclass
class Environment:
    params: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)  # job name -> its result
    variables: Mapping[str, Any] = field(default_factory=dict)
    run: Mapping[str, Any] = field(default_factory=dict)  # id, date, time


COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def evaluate(tree: Mapping[str, Any], env: Environment) -> Any:
    if "op" in tree:  # the one two-key form: {"op": "+", "args": [a, b]}
        return _binary(tree["op"], evaluate(tree["args"][0], env), evaluate(tree["args"][1], env))
    ((kind, value),) = tree.items()
    match kind:
        case "lit":
            return value
        case "dur":
            return dt.timedelta(milliseconds=value)
        case "date":
            return dt.date.fromisoformat(value)
        case "datetime":
            return dt.datetime.fromisoformat(value)
        case "param":
            return _lookup(env.params, value, "parameter")
        case "out":
            return _lookup(env.outputs, value, "job output")
        case "var":
            return _lookup(env.variables, value, "variable")
        case "run":
            return _lookup(env.run, value, "run field")
        case "attr":
            return _attr(evaluate(value[0], env), value[1])
        case "index":
            return _index(evaluate(value[0], env), evaluate(value[1], env))
        case "not":
            return not evaluate(value, env)
        case "and":
            return all(evaluate(v, env) for v in value)
        case "or":
            return any(evaluate(v, env) for v in value)
        case "fstr":
            return "".join(p if isinstance(p, str) else _text(evaluate(p, env)) for p in value)
        case "list":
            return [evaluate(v, env) for v in value]
        case "dict":
            return {evaluate(k, env): evaluate(v, env) for k, v in value}
    raise ExpressionError(f"unknown expression form {kind!r}")


def _lookup(table: Mapping[str, Any], name: str, what: str) -> Any:
    if name not in table:
        raise ExpressionError(f"no {what} `{name}`")
    return table[name]


def _attr(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        if name not in value:
            raise ExpressionError(f"no field `{name}` in {sorted(value)!r}")
        return value[name]
    raise ExpressionError(f"cannot read field `{name}` of a {type(value).__name__}")


def _index(value: Any, key: Any) -> Any:
    try:
        return value[key]
    except (KeyError, IndexError, TypeError) as err:
        raise ExpressionError(f"cannot index {type(value).__name__} with {key!r}: {err}") from err


def _binary(op: str, left: Any, right: Any) -> Any:
    left, right = _as_date(left, right), _as_date(right, left)
    try:
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        return COMPARISONS[op](left, right)
    except TypeError as err:
        raise ExpressionError(
            f"cannot apply `{op}` to {type(left).__name__} and {type(right).__name__}"
        ) from err


def _as_date(value: Any, other: Any) -> Any:
    """ISO date strings (how dates travel in JSON) take part in date arithmetic."""
    if isinstance(value, str) and isinstance(other, dt.timedelta | dt.date):
        try:
            return dt.date.fromisoformat(value) if len(value) == 10 else dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _text(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
