"""Tasks for the resume tests: items listed in `broken` fail; every call is recorded, to count re-runs."""

from __future__ import annotations

from tqflow.runtime import task

broken: set[str] = set()
calls: list[str] = []


@task
def items(n: int) -> list[int]:
    calls.append("items")
    return list(range(n))


@task
def square(x: int) -> int:
    calls.append(f"square:{x}")
    if str(x) in broken:
        raise RuntimeError(f"item {x} is broken")
    return x * x


@task
def total(values: list[int]) -> int:
    calls.append("total")
    if "total" in broken:
        raise RuntimeError("total is broken")
    return sum(values)
