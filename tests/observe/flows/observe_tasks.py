"""Tasks for the observability tests: a pause, a failure, a join."""

from __future__ import annotations

import asyncio

from tqflow.runtime import task


@task
async def pause(ms: int) -> int:
    await asyncio.sleep(ms / 1000)
    return ms


@task
def fail(message: str) -> None:
    raise RuntimeError(message)


@task
def join(a: int, b: int) -> int:
    return a + b


seen: dict[str, int] = {}


@task
def flaky(key: str) -> str:
    """Fails the first time it sees `key`, succeeds after (for replay tests)."""
    seen[key] = seen.get(key, 0) + 1
    if seen[key] == 1:
        raise RuntimeError(f"first try for {key}")
    return key


@task
def total(values: list[int]) -> int:
    return sum(values)
