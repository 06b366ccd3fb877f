"""A run's parameters: values given as text or Python values, checked against the declared
types, defaults evaluated at run start."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from tqflow.errors import PlanError
from tqflow.plan import FlowPlan
from tqflow.runtime.expressions import Environment, evaluate


class ParamError(PlanError, ValueError):
    """A parameter is unknown, missing, or not of its declared type."""


def resolve_params(flow: FlowPlan, given: Mapping[str, Any], run_env: Mapping[str, Any]) -> dict[str, Any]:
    declared = {p.name: p for p in flow.params}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParamError(
            f"flow `{flow.name}` has no parameter {', '.join(unknown)} "
            f"(it takes: {', '.join(declared) or 'none'})"
        )
    values: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given:
            values[name] = coerce(given[name], param.type, name)
        elif param.default is not None:
            value = evaluate(param.default, Environment(params=values, run=run_env))
            values[name] = coerce(value, param.type, name)
        else:
            raise ParamError(f"parameter `{name}` ({param.type}) has no default and was not given")
    return values


def coerce(value: Any, type_name: str, name: str) -> Any:
    """Convert text (from `--param k=v`) or a Python value to the JSON form of `type_name`."""
    optional = type_name.endswith("?")
    base = type_name.rstrip("?")
    if value is None or (optional and value == "none"):
        if optional:
            return None
        raise ParamError(f"parameter `{name}` ({type_name}) cannot be none")
    try:
        return _coerce(value, base)
    except (ValueError, TypeError, InvalidOperation) as err:
        raise ParamError(f"parameter `{name}`: {value!r} is not a {type_name} ({err})") from err


def _coerce(value: Any, base: str) -> Any:
    if base == "Str":
        return str(value)
    if base == "Int":
        if isinstance(value, bool):
            raise TypeError("a boolean is not an integer")
        return int(value)
    if base == "Float":
        return float(value)
    if base == "Bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ValueError("expected true or false")
    if base == "Date":
        if isinstance(value, dt.datetime):
            return value.date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        return dt.date.fromisoformat(str(value)).isoformat()
    if base == "DateTime":
        return (
            value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        ).isoformat()
    if base == "Duration":
        if isinstance(value, dt.timedelta):
            return value.total_seconds()
        from tqflow.plan.durations import parse_duration

        return parse_duration(str(value)) / 1000
    if base == "Decimal":
        return str(Decimal(str(value)))
    if isinstance(value, str) and (base == "Json" or base.startswith(("list", "dict"))):
        return json.loads(value)
    if isinstance(value, str) and base not in SCALARS and value.lstrip().startswith(("{", "[")):
        # a class (a pydantic model, a dataclass) given as text (`--param order='{"id": 3}'`): its JSON.
        # Malformed JSON is refused here, at submit; the fields are checked by the task's own validation.
        return json.loads(value)
    return value


SCALARS = ("Str", "Int", "Float", "Bool", "Date", "DateTime", "Duration", "Decimal", "Json")
