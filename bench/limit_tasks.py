"""bench/limits.py's tasks: each appends to a ledger file outside Redis (TQFLOW_LIMIT_LEDGER) when it starts
and ends, so the limits are checked from what really ran, not from the limiter's own state."""

from __future__ import annotations

import asyncio
import os
import time

from tqflow.runtime.task import task


def _log(kind: str, label: str) -> None:
    # one small O_APPEND write a line: lines from several processes never interleave
    line = f"{kind} {label} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(os.environ["TQFLOW_LIMIT_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@task(queue="limits")
async def tick(label: str) -> None:
    _log("start", label)


@task(queue="limits")
async def hold(label: str, seconds: float) -> None:
    _log("start", label)
    await asyncio.sleep(seconds)
    _log("end", label)
