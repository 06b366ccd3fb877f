"""Tasks for F10: one step of a large DAG; it fails when told to, and logs start/done to the ledger."""

from __future__ import annotations

import asyncio

from fault_tasks import ledger_line

from tqflow.runtime import task


@task
async def step(key: str, fail: bool, ms: int, a: str = "", b: str = "") -> str:
    ledger_line("start", key)
    await asyncio.sleep(ms / 1000)
    if fail:
        raise RuntimeError(f"{key} fails on purpose")
    ledger_line("done", key)
    return key
