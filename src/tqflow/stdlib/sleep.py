"""`use std.sleep as sleep`: the same `sleep` task as `std.time`, for flows that only wait."""

from __future__ import annotations

from tqflow.runtime import task
from tqflow.stdlib.time import sleep as _sleep


@task
async def sleep(seconds: float) -> float:
    """Sleep, then return the number of seconds slept."""
    return await _sleep.fn(seconds)
