"""Arguments checked against a task's annotations with pydantic (one TypeAdapter a parameter, cached).

The client checks before it submits (a wrong call fails at once, with the task and parameter named);
the worker validates again, which also turns JSON values back into the annotated types (dates,
decimals, pydantic models, …)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from tqflow.errors import ClientError
from tqflow.runtime.task import Task

EXACT = (int, str, bool, float)


class ArgumentError(ClientError, ValueError):
    """A job's arguments do not fit its task's signature."""


class Validator:
    def __init__(self, task: Task[Any, Any]) -> None:
        self.task_name = task.name
        try:
            hints = typing.get_type_hints(task.fn, include_extras=True)
        except Exception:  # unresolvable forward references: check names only
            hints = {}
        self.adapters: dict[str, TypeAdapter[Any] | None] = {}
        # parameters annotated with a plain int, str, bool or float: a value of exactly that type is what
        # pydantic would give back, so it is not validated again (a job's JSON arguments mostly are)
        self.exact: dict[str, type] = {}
        self.required: set[str] = set()
        self.any_keyword = False
        for name, param in task.signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                self.any_keyword = True
                continue
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            hint = hints.get(name, Any)
            self.adapters[name] = None if hint is Any else TypeAdapter(hint)
            if hint in EXACT:
                self.exact[name] = hint
            if param.default is inspect.Parameter.empty:
                self.required.add(name)
        result = hints.get("return", Any)
        self.result: TypeAdapter[Any] | None = (
            None if result in (Any, None, type(None)) else TypeAdapter(result)
        )

    def validate(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        missing = self.required.difference(kwargs)
        if missing:
            raise ArgumentError(f"task `{self.task_name}` is missing argument {', '.join(sorted(missing))}")
        out: dict[str, Any] = {}
        for name, value in kwargs.items():
            if name not in self.adapters:
                if not self.any_keyword:
                    raise ArgumentError(
                        f"task `{self.task_name}` has no parameter `{name}` "
                        f"(it takes: {', '.join(self.adapters) or 'nothing'})"
                    )
                out[name] = value
                continue
            adapter = self.adapters[name]
            if adapter is None or type(value) is self.exact.get(name):
                out[name] = value
                continue
            try:
                out[name] = adapter.validate_python(value)
            except ValidationError as err:
                raise ArgumentError(f"task `{self.task_name}`, argument `{name}`: {_first(err)}") from err
        return out

    def result_value(self, value: Any) -> Any:
        """A decoded result in the task's annotated return type (when it has one)."""
        if self.result is None:
            return value
        try:
            return self.result.validate_python(value)
        except ValidationError:
            return value


def _first(err: ValidationError) -> str:
    detail = err.errors()[0]
    where = ".".join(str(p) for p in detail.get("loc", ()))
    return f"{detail.get('msg', 'invalid')}{f' at {where}' if where else ''} (got {detail.get('input')!r})"


_cache: dict[int, tuple[Task[Any, Any], Validator]] = {}


def validator(task: Task[Any, Any]) -> Validator:
    hit = _cache.get(id(task))
    if hit is not None and hit[0] is task:
        return hit[1]
    made = Validator(task)
    _cache[id(task)] = (task, made)
    return made
