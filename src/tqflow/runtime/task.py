"""`@task`: attach a frozen definition to a function. Nothing is registered globally; a worker is
handed the modules to load and finds the tasks in them.

A `Task[P, R]` keeps the function's parameter and result types, so `task.call(...)` is checked by mypy
and `client.enqueue(task.call(...))` / `client.result(job_id)` carry the result type `R`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

from tqflow.errors import UsageError, UsageTypeError
from tqflow.plan import Priority, RetryPlan
from tqflow.plan.durations import Duration, to_ms
from tqflow.runtime.limits import Limit, LimitArg, limits_of, wire_of
from tqflow.runtime.store.payloads import check_choice

P = ParamSpec("P")
R = TypeVar("R")
EXECUTORS = ("auto", "thread", "async", "process")
Upgrader = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class TaskOptions:
    name: str
    priority: str | None = None
    queue: str | None = None
    executor: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)
    retry: RetryPlan | None = None
    timeout_ms: int | None = None
    deadline_ms: int | None = None
    dead_letter: str | None = None
    version: int = 1  # the payload schema version of the arguments
    upgraders: Mapping[int, Upgrader] = field(default_factory=dict)  # from version N to N+1
    codec: str | None = None  # json, msgpack or pickle: its jobs' arguments and its results
    compression: str | None = None  # none, zlib or zstd
    limits: tuple[Limit, ...] = ()  # the limiters every job of it takes (runtime/limits.py)
    keep_result: bool = True  # False: a job that succeeds at its first attempt leaves no end record

    @property
    def limit_wire(self) -> list[dict[str, Any]]:
        """Its limits as a job's `lim` option carries them."""
        return wire_of(self.limits)


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

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call[R]:
        """The arguments of one job of this task, type-checked: `client.enqueue(add.call(1, y=2))`."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as err:
            raise UsageTypeError(f"task `{self.name}`: {err}") from err
        return Call(self, dict(bound.arguments))

    def upgrade(self, version: int | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments from an older payload schema version, upgraded to the current one."""
        if version is None or version == self.options.version:
            return kwargs
        if version > self.options.version:
            raise UsageError(
                f"payload version {version} is newer than task `{self.name}` (version {self.options.version})"
            )
        for step in range(version, self.options.version):
            upgrader = self.options.upgraders.get(step)
            if upgrader is None:
                raise UsageError(f"task `{self.name}` has no upgrader from payload version {step}")
            kwargs = upgrader(kwargs)
        return kwargs

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


@dataclass(frozen=True)
class Call(Generic[R]):
    """A task with the arguments of one job (from `task.call(...)`)."""

    task: Task[Any, R]
    kwargs: dict[str, Any]


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    priority: str | None = None,
    queue: str | None = None,
    executor: str = "auto",
    retry: RetryPlan | None = None,
    timeout: Duration | None = None,
    deadline: Duration | None = None,
    dead_letter: str | None = None,
    version: int = 1,
    upgraders: Mapping[int, Upgrader] | None = None,
    limit: LimitArg | None = None,
    codec: str | None = None,
    compression: str | None = None,
    keep_result: bool = True,
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
    retry: RetryPlan | None = None,
    timeout: Duration | None = None,
    deadline: Duration | None = None,
    dead_letter: str | None = None,
    version: int = 1,
    upgraders: Mapping[int, Upgrader] | None = None,
    limit: LimitArg | None = None,
    codec: str | None = None,
    compression: str | None = None,
    keep_result: bool = True,
    **extra: Any,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Mark a function as a task. Its name defaults to `module.function` (what the compiler sees).
    `limit`: a `Limiter`, `limiter.by(key)` or a list of them, taken by every job of the task.
    `codec` (json, msgpack, pickle) and `compression` (none, zlib, zstd): how its jobs' arguments and
    its results are encoded, whoever sends them (a call's own `codec=` wins); unset, the client's and
    the worker's settings. `keep_result=False`: nobody reads its results, so a job of it that succeeds at
    its first attempt (and that no one waits for) leaves no record at all, only its stream entry acked
    and deleted (docs/runtime.md); its status then reads as not found."""
    limits = limits_of(limit) or ()
    if not isinstance(keep_result, bool):
        raise UsageTypeError(f"keep_result must be True or False, got {keep_result!r}")
    if priority is not None:
        Priority.parse(priority)  # ValueError for a name that is not a level
    if executor not in EXECUTORS:
        raise UsageError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    if not isinstance(version, int) or version < 1:
        raise UsageError(f"version must be a positive integer, got {version!r}")
    check_choice(codec, compression, "@task")

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        options = TaskOptions(
            name=name or f"{f.__module__}.{f.__qualname__}",
            priority=priority,
            queue=queue,
            executor=executor,
            extra=dict(extra),
            retry=retry,
            timeout_ms=None if timeout is None else to_ms(timeout, "timeout"),
            deadline_ms=None if deadline is None else to_ms(deadline, "deadline"),
            dead_letter=dead_letter,
            version=version,
            upgraders=dict(upgraders or {}),
            limits=limits,
            codec=codec,
            compression=compression,
            keep_result=keep_result,
        )
        return Task(f, options)

    return wrap(fn) if fn is not None else wrap


def tasks_in(module: object) -> dict[str, Task[Any, Any]]:
    """Every task defined at the top level of a module, by task name."""
    return {t.name: t for t in vars(module).values() if isinstance(t, Task)}
