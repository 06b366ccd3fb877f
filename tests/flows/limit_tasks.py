"""Tasks for the flow-control tests: each records when it ran, in this process, so a test can check a
limit from outside Redis (a ledger of starts and ends)."""

from __future__ import annotations

import asyncio
import time

from tqflow.runtime import task
from tqflow.runtime.limits import Limiter, Rate

SHARED = Limiter("lt-shared", concurrency=2)
RATE = Limiter("lt-rate", rate=Rate(5, per="s", burst=1))

running: dict[str, int] = {}  # tag -> jobs running now
peak: dict[str, int] = {}  # tag -> the most that ever ran at once
starts: dict[str, list[float]] = {}  # tag -> start times (time.time())
done: dict[str, list[str]] = {}  # tag -> labels, in the order they ended
failures: dict[str, int] = {}


@task(queue="limits")
async def hold(tag: str, seconds: float = 0.2, label: str = "") -> str:
    """Run for `seconds`, counting how many jobs of `tag` run at once."""
    running[tag] = running.get(tag, 0) + 1
    peak[tag] = max(peak.get(tag, 0), running[tag])
    starts.setdefault(tag, []).append(time.time())
    try:
        await asyncio.sleep(seconds)
    finally:
        running[tag] -= 1
        done.setdefault(tag, []).append(label)
    return label


@task(queue="limits", limit=SHARED)
async def shared(tag: str, seconds: float = 0.1) -> None:
    """Every job of this task takes the `lt-shared` limiter (the task's own limit)."""
    await hold.fn(tag, seconds)


@task(queue="limits")
async def flaky(tag: str, fails: int = 1) -> str:
    """Fails its first `fails` attempts of `tag`."""
    starts.setdefault(tag, []).append(time.time())
    failures[tag] = failures.get(tag, 0) + 1
    if failures[tag] <= fails:
        raise RuntimeError("not yet")
    return "ok"


@task(queue="limits")
def customer_of(name: str) -> dict[str, str]:
    """An upstream job whose output names the customer a later job is limited by."""
    return {"customer": name}


@task(queue="limits")
def items(n: int) -> list[int]:
    return list(range(n))
