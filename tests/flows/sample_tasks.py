"""Tasks used by the test flows. Each records what it saw in a module-level ledger."""

from __future__ import annotations

import time

from tqflow.runtime import task

calls: list[tuple[str, float]] = []
failures: dict[str, int] = {}


@task
def source(n: int) -> list[int]:
    calls.append(("source", time.monotonic()))
    return list(range(n))


@task
def total(values: list[int]) -> int:
    calls.append(("total", time.monotonic()))
    return sum(values)


@task
def double(values: list[int]) -> list[int]:
    calls.append(("double", time.monotonic()))
    return [v * 2 for v in values]


@task
def join(a: int, b: list[int]) -> dict[str, int]:
    calls.append(("join", time.monotonic()))
    return {"a": a, "b": sum(b)}


@task
def flaky(key: str, fail_times: int) -> str:
    seen = failures.get(key, 0)
    failures[key] = seen + 1
    if seen < fail_times:
        raise RuntimeError(f"flaky failure {seen + 1} for {key}")
    return key


@task
def boom(message: str) -> str:  # always raises; typed str so `note(text=bad.out)` type-checks
    raise ValueError(message)


@task
def note(text: str) -> str:
    calls.append((f"note:{text}", time.monotonic()))
    return text
