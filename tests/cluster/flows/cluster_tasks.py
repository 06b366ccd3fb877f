"""Tasks for the cluster tests: each records the calls it saw, so tests can count executions."""

from __future__ import annotations

import asyncio

from tqflow.runtime import task

started: list[str] = []
done: list[str] = []


@task
async def nap(key: str, ms: int) -> str:
    started.append(key)
    await asyncio.sleep(ms / 1000)
    done.append(key)
    return key
