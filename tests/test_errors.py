"""One error tree: every exception class tqflow defines is a `TqflowError` in one of the five branches,
and every one survives pickling (errors cross process boundaries: pool processes, results, the API)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pickle
import pkgutil
from pathlib import Path
from typing import Any

import pytest

import tqflow
from tqflow import errors
from tqflow.dsl.source import Span
from tqflow.runtime.jobs import BulkRejected, JobError, JobId, JobRejected

BRANCHES = (errors.LanguageError, errors.PlanError, errors.ClientError, errors.WorkerError, errors.StoreError)
# Raised by us on purpose outside the tree: a BaseException that `except Exception` must not catch.
OUTSIDE = {"tqflow.runtime.executors.JobInterrupted"}


def every_module() -> list[str]:
    """Every module of the package but the `__main__`s (importing one runs it)."""
    found = pkgutil.walk_packages(tqflow.__path__, "tqflow.")
    return [m.name for m in found if not m.name.endswith(".__main__")]


def defined_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in every_module():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == name:
                found[f"{name}.{value.__qualname__}"] = value
    return [found[k] for k in sorted(found)]


# An instance of each class whose constructor takes more than a message.
SAMPLES: dict[str, Any] = {
    "JobError": lambda cls: cls("j1", "job j1 failed", {"type": "ValueError", "message": "boom"}),
    "JobRejected": lambda cls: cls("unique key k is held by j0", holder="j0"),
    "BulkRejected": lambda cls: cls("job 2 of 3 was refused", [JobId("a"), JobId("", "error", "bad")]),
    "ProcessFailure": lambda cls: cls("m.Err", "boom", "Traceback …", ["m.Err", "Exception"]),
    "Retry": lambda cls: cls("5s", "try later"),
    "HTTPStatusError": lambda cls: cls(503, "https://example.test/x", "unavailable"),
    "CommandFailed": lambda cls: cls(["ls", "-l"], 2, "no such file"),
    "SyntaxFailure": lambda cls: cls("a flow has at most one `params` statement", Span.unknown()),
}


def sample(cls: type[BaseException]) -> BaseException:
    for base in cls.__mro__:
        if base.__name__ in SAMPLES:
            return SAMPLES[base.__name__](cls)  # type: ignore[no-any-return]
    return cls(f"{cls.__name__} in test")


def test_every_error_joins_the_tree() -> None:
    classes = defined_exceptions()
    assert len(classes) > 25
    ours = [c for c in classes if f"{c.__module__}.{c.__qualname__}" not in OUTSIDE]
    assert [c for c in ours if not issubclass(c, errors.TqflowError)] == []
    assert [c for c in ours if c not in (errors.TqflowError, *BRANCHES) and not issubclass(c, BRANCHES)] == []


def test_errors_that_were_builtins_still_are() -> None:
    from tqflow.runtime.deployments import FlowNotDeployed
    from tqflow.runtime.registry import TaskLoadError
    from tqflow.runtime.store.keys import KeyPartError
    from tqflow.runtime.validation import ArgumentError

    assert issubclass(errors.JobNotFound, LookupError) and issubclass(FlowNotDeployed, LookupError)
    assert issubclass(ArgumentError, ValueError) and issubclass(KeyPartError, ValueError)
    assert issubclass(TaskLoadError, ImportError) and issubclass(JobRejected, ValueError)
    assert issubclass(BulkRejected, ValueError) and issubclass(JobError, errors.ClientError)


@pytest.mark.parametrize("cls", defined_exceptions(), ids=lambda c: c.__qualname__)
def test_every_error_pickles(cls: type[BaseException]) -> None:
    if f"{cls.__module__}.{cls.__qualname__}" in OUTSIDE:
        return
    error = sample(cls)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert again.args == error.args and str(again) == str(error)
    assert {k: repr(v) for k, v in vars(again).items()} == {k: repr(v) for k, v in vars(error).items()}


def test_a_bad_duration_joins_the_tree_and_keeps_its_old_types() -> None:
    from tqflow.errors import DurationError, PlanError
    from tqflow.plan.durations import parse_duration, to_ms

    for bad, old in ((lambda: to_ms(True), TypeError), (lambda: to_ms("3x"), ValueError)):
        with pytest.raises(DurationError) as caught:
            bad()
        assert isinstance(caught.value, PlanError) and isinstance(caught.value, old)
    with pytest.raises(DurationError, match="not a duration: '30'"):
        parse_duration("30")


def test_messages_say_what_was_wrong_and_where() -> None:
    """A message names the value and the place it came from (the cron field, the unique key, the option)."""
    from tqflow.plan.durations import parse_duration
    from tqflow.plan.firetimes import CronError, parse_cron
    from tqflow.runtime.jobs import Unique
    from tqflow.runtime.schedules import trigger_plan

    with pytest.raises(CronError, match=r"^minute field `61`: 61 is out of range 0-59$"):
        parse_cron("61 * * * *")
    with pytest.raises(CronError, match=r"^day of week field `mon-sun/0`: step `0` is not a whole number"):
        parse_cron("0 0 * * mon-sun/0")
    with pytest.raises(ValueError, match=r"^unique key 'nightly': `within` must be longer than 0, got 0$"):
        Unique("nightly", 0)
    with pytest.raises(ValueError, match=r"^a schedule's `every` must be longer than 0, got '0s'$"):
        trigger_plan(
            cron=None,
            every="0s",
            at=None,
            tz="UTC",
            catchup="none",
            overlap="skip",
            on_dst_gap="shift",
            on_dst_repeat="first",
        )
    with pytest.raises(ValueError, match=r"\(a number and one of ms, s, m, h, d\)$"):
        parse_duration("30")


# Built-in exceptions raised on purpose, each for a reason outside the tree's reach: (module, function).
BUILTIN_RAISES_ALLOWED = {
    # parsed values rewrapped by the caller (ParamError, MalformedRecord) with the parameter or field named
    ("tqflow.runtime.params", "_coerce"),
    ("tqflow.runtime.worker.attempt", "_options"),
    ("tqflow.runtime.worker.attempt", "__init__"),
    ("tqflow.runtime.store.records", "run_context"),  # a start row's run info, read by Attempt.__init__
    # a source file that does not decode: Python's own error for it, as `compile()` raises
    ("tqflow.compiler.python_tasks", "decode_module"),
}
# Raised anywhere on purpose: a wait that timed out (`result(timeout=…)`, as asyncio.wait_for) and a
# connection that failed (stdlib http): callers and retry rules match them by these classes.
PROTOCOL_ERRORS = {"TimeoutError", "ConnectionError"}
BUILTIN_ERRORS = {
    name
    for name, value in vars(__import__("builtins")).items()
    if isinstance(value, type) and issubclass(value, Exception)
} - {"NotImplementedError", "StopIteration", "StopAsyncIteration", "AssertionError", *PROTOCOL_ERRORS}


def builtin_raises(module: str, tree: ast.AST) -> list[tuple[str, str, int]]:
    """(function, exception, line) of each `raise ValueError(...)`-like statement of a built-in error."""
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(target, ast.Name) and target.id in BUILTIN_ERRORS:
                    found.append((func.name, target.id, node.lineno))
    return sorted(set(found), key=lambda f: f[2])


def test_no_builtin_error_is_raised_outside_the_tree() -> None:
    offenders = []
    for name in every_module():
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text(), spec.origin)
        for func, error, line in builtin_raises(name, tree):
            if (name, func) not in BUILTIN_RAISES_ALLOWED:
                offenders.append(f"{name}:{line} {func}() raises {error}")
    assert offenders == [], "raise a TqflowError (errors.py: UsageError, SettingError, …) instead"


def test_the_check_finds_a_builtin_raise() -> None:
    tree = ast.parse("def f(x):\n    if x:\n        raise ValueError('bad')\n    raise KeyError\n")
    assert builtin_raises("m", tree) == [("f", "ValueError", 3), ("f", "KeyError", 4)]


@pytest.mark.parametrize(
    ("cls", "old"),
    [
        (errors.PlanValueError, ValueError),
        (errors.UsageError, ValueError),
        (errors.UsageTypeError, TypeError),
        (errors.SettingError, ValueError),
        (errors.ServerError, RuntimeError),
    ],
)
def test_the_value_errors_keep_their_old_types(cls: type[errors.TqflowError], old: type[Exception]) -> None:
    assert issubclass(cls, old) and issubclass(cls, BRANCHES)


def test_a_bad_call_raises_a_usage_error_that_is_still_a_value_error() -> None:
    from tqflow.runtime.jobs import Unique

    with pytest.raises(errors.UsageError, match="`within` must be longer than 0") as caught:
        Unique("k", within=0)
    assert isinstance(caught.value, ValueError)
