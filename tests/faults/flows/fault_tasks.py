"""Tasks for the fault tests: each appends `start` and `done` lines to a ledger file OUTSIDE Redis."""

from __future__ import annotations

import asyncio
import os
import time

from tqflow.runtime import task


def ledger_line(*fields: object) -> None:
    """One line, one write(2) on an O_APPEND file: lines from many processes never interleave."""
    line = " ".join(str(f) for f in (*fields, os.getpid(), f"{time.time():.3f}")) + "\n"
    fd = os.open(os.environ["TQFLOW_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@task
async def work(key: str, ms: int) -> str:
    ledger_line("start", key)
    await asyncio.sleep(ms / 1000)
    ledger_line("done", key)
    return key


@task
async def hold(key: str, release: str, max_ms: int) -> str:
    """Run until the file `release` exists, `max_ms` at most: the test ends its jobs when what it watches
    has happened, instead of guessing a duration long enough for a loaded machine."""
    ledger_line("start", key)
    deadline = time.monotonic() + max_ms / 1000
    while not os.path.exists(release) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    ledger_line("done", key)
    return key


@task
async def child(key: str) -> str:
    ledger_line("child", key)
    return key
