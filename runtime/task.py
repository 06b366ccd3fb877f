"""`@task`: attach a frozen definition to a function. Nothing is registered globally; a worker is
handed the modules to load and finds the tasks in them."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

from tqflow.compiler.plan import PRIORITIES

P = ParamSpec("P")
R = TypeVar("R")
EXECUTORS = ("auto", "thread", "async", "process")


@dataclass(frozen=True)
class TaskOptions:
    name: str
    priority: str | None = None
    queue: str | None = None
    executor: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)


class Task(Generic[P, R]):
    """A function with its task options. Calling it calls the function (handy in tests)."""

    def __init__(self, fn: Callable[P, R], options: TaskOptions) -> None:
        self.fn = fn
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        return self.options.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    priority: str | None = None,
    queue: str | None = None,
    executor: str = "auto",
    **extra: Any,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    priority: str | None = None,
    queue: str | None = None,
    executor: str = "auto",
    **extra: Any,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Mark a function as a task. Its name defaults to `module.function` (what the compiler sees)."""
    if priority is not None and priority not in PRIORITIES:
        raise ValueError(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        options = TaskOptions(
            name=name or f"{f.__module__}.{f.__qualname__}",
            priority=priority,
            queue=queue,
            executor=executor,
            extra=dict(extra),
        )
        return Task(f, options)

    return wrap(fn) if fn is not None else wrap


def tasks_in(module: object) -> dict[str, Task[Any, Any]]:
    """Every task defined at the top level of a module, by task name."""
    return {t.name: t for t in vars(module).values() if isinstance(t, Task)}
