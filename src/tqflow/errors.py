"""One error tree: every error tqflow raises is a `TqflowError`, in one of five branches by where it
comes from. Each class below says when it is raised; the classes themselves live beside the code that
raises them and join a branch here (a class that was a `ValueError` or a `LookupError` still is one, so
`except ValueError` keeps working).

    TqflowError
    ├── LanguageError   a .tqflow file: syntax, formatting, the Python modules it names
    ├── PlanError       a plan or what it describes: run parameters, expressions, schedules
    ├── ClientError     a producer's call: a job or run that ended without a result, was refused,
    │                   or does not exist; task arguments that do not fit the signature
    ├── WorkerError     running jobs: loading task modules, a task that failed in a process, the event loop
    └── StoreError      Redis: names that cannot be keys, payloads that cannot be read, the embedded server

Errors cross process boundaries (pool processes, the API, pickled results), so every one pickles:
`TqflowError.__reduce__` rebuilds an error from its args and attributes without calling `__init__`.
This module imports nothing of tqflow's, so every layer may import it.
"""

from __future__ import annotations

from typing import Any


class TqflowError(Exception):
    """The base of every error tqflow raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(vars(self))))


def _rebuild(cls: type[TqflowError], args: tuple[Any, ...], state: dict[str, Any]) -> TqflowError:
    error = cls.__new__(cls, *args)
    error.args = args
    vars(error).update(state)
    return error


class LanguageError(TqflowError):
    """A `.tqflow` file could not be read, formatted or checked against its Python modules."""


class PlanError(TqflowError):
    """A plan, or a value it describes (a run's parameters, an expression, a schedule), is not valid."""


class DurationError(PlanError, ValueError, TypeError):
    """A value that is not a duration (`30x`, a negative number, a boolean). Also a `ValueError` and a
    `TypeError`, the two it was raised as before it joined the tree, so existing handlers still catch it."""


class ClientError(TqflowError):
    """A producer's call failed: the job or run ended without a result, was refused, or does not exist."""


class WorkerError(TqflowError):
    """A worker could not run a job: a task module that does not load, a failure in a pool process."""


class StoreError(TqflowError):
    """The Redis side: a name that cannot be part of a key, a payload that cannot be read, no server."""


class PlanValueError(PlanError, ValueError):
    """A value a plan describes is out of its range: a negative delay, a priority that does not exist, a
    limiter no job could ever pass, a job graph with a cycle (a `ValueError`: pydantic reports it per
    field)."""


class UsageError(ClientError, ValueError):
    """A call to tqflow's Python API with a value it does not take: a job option, a task's settings, a
    limiter, a schedule, a codec name (a `ValueError`, as it was raised before it joined the tree)."""


class UsageTypeError(ClientError, TypeError):
    """A call to tqflow's Python API with a value of the wrong kind: a string where a list goes, an object
    that cannot be stored as JSON (a `TypeError`, as it was raised before it joined the tree)."""


class SettingError(WorkerError, ValueError):
    """A setting a worker, the API or an alert route starts with is not valid: refused at start, before
    any job runs (a `ValueError`, as it was raised before it joined the tree)."""


class ServerError(StoreError, RuntimeError):
    """A Redis server tqflow starts itself (the embedded one, the test topologies) did not start or did not
    answer (a `RuntimeError`, as it was raised before it joined the tree)."""


class NotFound(ClientError, LookupError):
    """Something named by id or name does not exist (a `LookupError`: the API answers 404)."""


class JobNotFound(NotFound):
    """No job has this id (never submitted, or removed by retention)."""


class RunNotFound(NotFound):
    """No run has this id (never started, or removed by retention)."""


class QueueNotFound(NotFound):
    """No queue has this name."""


class TaskNotFound(WorkerError, LookupError):
    """A module has no task of this name (the worker was asked to run a task it cannot find)."""


__all__ = [
    "ClientError",
    "JobNotFound",
    "LanguageError",
    "NotFound",
    "PlanError",
    "PlanValueError",
    "QueueNotFound",
    "RunNotFound",
    "ServerError",
    "SettingError",
    "StoreError",
    "TaskNotFound",
    "TqflowError",
    "UsageError",
    "UsageTypeError",
    "WorkerError",
]
