"""Tasks of tests/flows/subflows.tqflow (sub-flow jobs against a real Redis)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tqflow.runtime import task


@task
def numbers(n: int) -> list[int]:
    return list(range(1, n + 1))


@task
def total(values: list[int], fail: bool = False, marker: str = "") -> int:
    """Fails when asked to, and once for each `marker` file: the first call makes the file and fails."""
    if fail:
        raise RuntimeError("asked to fail")
    if marker and not Path(marker).exists():
        Path(marker).write_text("failed once")
        raise RuntimeError("fails the first time")
    return sum(values)


@task
def report(total: int, count: int) -> str:
    return f"{count} numbers add up to {total}"


@task
def alarm(reason: str) -> str:
    return f"alarm: {reason}"


@task
async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "rested"
