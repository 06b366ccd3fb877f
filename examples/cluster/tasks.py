"""Tasks for the cluster example: each says which worker process ran it."""

from __future__ import annotations

import asyncio
import os
import socket

from tqflow.runtime import task


@task
async def stamp(run_id: str) -> dict[str, str]:
    await asyncio.sleep(1.5)  # long enough to kill the worker in the middle and watch it run again
    return {"run": run_id, "by": f"{socket.gethostname()}:{os.getpid()}"}


@task
def report(stamp: dict[str, str]) -> str:
    line = f"run {stamp['run']} stamped by {stamp['by']}, reported by pid {os.getpid()}"
    print(line, flush=True)
    return line
