"""Poison tasks for F7: each one misbehaves in its own way; `good` shows the pool keeps working."""

from __future__ import annotations

import asyncio
import ctypes
import os
import time

from fault_tasks import ledger_line

from tqflow.runtime import task
from tqflow.runtime.policies import fixed


@task(retry=fixed("10ms", attempts=3))
def raises(key: str) -> None:
    ledger_line("start", key)
    raise ValueError(f"poison {key}")


@task
def exits(key: str) -> None:
    ledger_line("start", key)
    os._exit(3)  # takes the whole worker process down, like an OOM kill


@task(timeout="500ms")
async def hangs(key: str) -> None:
    ledger_line("start", key)
    await asyncio.sleep(3600)


@task(executor="process", timeout="500ms")
def hangs_in_process(key: str) -> None:
    ledger_line("start", key)
    time.sleep(3600)


@task(executor="process", retry=fixed("10ms", attempts=2))
def segfaults(key: str) -> None:
    ledger_line("start", key)
    ctypes.string_at(0)  # SIGSEGV in the pool process


@task(executor="process")
def good_in_process(key: str) -> str:
    ledger_line("done", key)
    return key


@task
async def good(key: str) -> str:
    ledger_line("done", key)
    return key


@task
async def fails_fast(key: str) -> None:
    """Fails in about a millisecond, no retries: dead-lettered at once (concurrent DLQ replays)."""
    ledger_line("start", key)
    await asyncio.sleep(0.001)
    raise ValueError(f"fails fast {key}")


@task
def blocked_in_c(key: str, ms: int) -> str:
    """A thread job inside one long C call (time.sleep): an interrupt cannot reach it until it returns."""
    ledger_line("start", key)
    try:
        time.sleep(ms / 1000)
    except BaseException:
        ledger_line("interrupted", key)
        raise
    ledger_line("done", key)
    return key


@task
def busy_in_python(key: str, ms: int) -> str:
    """A thread job running Python bytecode: an interrupt stops it at once."""
    ledger_line("start", key)
    end = time.monotonic() + ms / 1000
    try:
        while time.monotonic() < end:
            pass
    except BaseException:
        ledger_line("interrupted", key)
        raise
    ledger_line("done", key)
    return key
