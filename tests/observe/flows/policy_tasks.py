"""Tasks with their own policies, sent by name in tests/observe/test_task_policies.py."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from tqflow.runtime import task
from tqflow.runtime.policies import fixed

tries: dict[str, int] = {}


@task(name="pol.flaky", retry=fixed("5ms", attempts=3), queue="pol", priority="high")
def flaky(key: str, fails: int = 2) -> int:
    """Fails `fails` times for `key`, then returns how many tries it took."""
    tries[key] = tries.get(key, 0) + 1
    if tries[key] <= fails:
        raise RuntimeError(f"try {tries[key]} of {key}")
    return tries[key]


@task(name="pol.doomed", retry=fixed("5ms", attempts=2), queue="pol", dead_letter="pol-dead")
def doomed(key: str) -> None:
    tries[key] = tries.get(key, 0) + 1
    raise RuntimeError(f"doomed {key}")


@task(name="pol.slow", timeout="200ms", queue="pol")
async def slow(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


class Point(BaseModel):
    x: int
    y: int = 0


@task(name="pol.typed", queue="pol")
def typed(count: int, point: Point, day: dt.date | None = None, tags: list[str] | None = None) -> int:
    return count + point.x + point.y


@task(name="pol.once", queue="pol", dead_letter="pol-dead")
def once(key: str) -> str:
    """Fails the first time it sees `key` (dead-lettered in `pol-dead`), succeeds when replayed."""
    tries[key] = tries.get(key, 0) + 1
    if tries[key] == 1:
        raise RuntimeError(f"first try of {key}")
    return key
