"""bench/cost.py's task: a no-op, so what is measured is the queue's own work."""

from __future__ import annotations

from tqflow.runtime.task import task


@task
async def noop(x: int) -> int:
    return x
