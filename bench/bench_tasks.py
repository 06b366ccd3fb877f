"""The benchmark's tqflow tasks: the same bodies as the peers' (RPUSH to a list, return x).

The worker imports this module (`tqrun worker -m bench_tasks`); PB_URL or PB_DB picks the Redis db.
"""

from __future__ import annotations

import os
import time

from redis.asyncio import Redis

from tqflow.runtime import task

URL = os.environ.get("PB_URL") or f"redis://127.0.0.1:6379/{os.environ.get('PB_DB', '9')}"
KEYS = os.environ.get("PB_KEYS", "pb")
DONE_KEY = f"{KEYS}:done"
DAG_KEY = f"{KEYS}:dagdone"
LATE_KEY = f"{KEYS}:late"
_redis: Redis | None = None


def _r() -> Redis:
    """One asyncio client per worker process (a worker runs one event loop)."""
    global _redis
    if _redis is None:
        _redis = Redis.from_url(URL)
    return _redis


@task
async def noop(x: int) -> int:
    await _r().rpush(DONE_KEY, x)
    return x


@task
async def late(x: int) -> None:
    await _r().rpush(LATE_KEY, f"{x} {time.time() * 1000.0:.3f}")


@task
async def join() -> int:
    await _r().rpush(DAG_KEY, 1)
    return 1
