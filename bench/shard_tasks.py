"""The task of bench/shards.py: it does nothing, so a drain measures tqflow and Redis alone."""

from __future__ import annotations

from tqflow.runtime import task


@task
async def nothing(x: int) -> int:
    return x
