"""`use std.time as time`: wait, or read the clock.

    job pause = time.sleep(seconds=30)

`sleep` is asynchronous, so a sleeping job holds no worker thread. Prefer a job's `delay` setting
for waiting before a job: that waits in Redis without holding a worker slot at all.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from tqflow.errors import UsageError
from tqflow.runtime import task


@task
async def sleep(seconds: float) -> float:
    """Sleep, then return the number of seconds slept."""
    if seconds < 0:
        raise UsageError(f"time.sleep: cannot sleep a negative time, got {seconds!r} s")
    await asyncio.sleep(seconds)
    return seconds


@task
def now() -> str:
    """The current time, UTC, ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat()
