"""Tasks for the standalone-job tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from pydantic import BaseModel

from tqflow.runtime import task
from tqflow.runtime.policies import Retry, fixed, per_exception

seen: list[str] = []
attempts: dict[str, int] = {}


class Point(BaseModel):
    x: int
    y: int


class GatewayTimeout(ConnectionError):
    pass


class CardDeclined(ValueError):
    pass


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task
async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y


@task
def norm(p: Point, day: dt.date) -> dict[str, object]:
    return {"sum": p.x + p.y, "weekday": day.isoweekday()}


@task
def record(tag: str) -> str:
    seen.append(tag)
    return tag


@task(retry=fixed("10ms", attempts=3))
def always_fails(message: str) -> None:
    raise ValueError(message)


@task(
    retry=per_exception(
        fixed("10ms", attempts=2), on={GatewayTimeout: fixed("5ms", attempts=4)}, never=[CardDeclined]
    )
)
def picky(key: str, kind: str) -> str:
    attempts[key] = attempts.get(key, 0) + 1
    if kind == "gateway":
        raise GatewayTimeout("gateway timed out")
    if kind == "card":
        raise CardDeclined("card declined")
    raise RuntimeError("other")


@task
def asks_for_retry(key: str) -> int:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 2:
        raise Retry(delay="20ms")
    return attempts[key]


@task
async def sleeper(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke"


@task
def busy_thread(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # a pure-Python loop: interruptible at a bytecode boundary
        pass
    return "done"


@task(timeout="100ms")
async def too_slow() -> None:
    await asyncio.sleep(5)


@task(executor="process")
def cpu(n: int) -> int:
    return sum(i * i for i in range(n))


@task(executor="process")
def cpu_forever() -> None:
    while True:
        pass


def _v1_to_v2(kwargs: dict[str, object]) -> dict[str, object]:
    return {"full_name": kwargs.pop("name")}


@task(version=2, upgraders={1: _v1_to_v2})
def greet(full_name: str) -> str:
    return f"hello {full_name}"


@task(keep_result=False)
def forgetful(tag: str) -> str:
    """Nobody reads its result: a first-attempt success leaves no record."""
    seen.append(tag)
    return tag
