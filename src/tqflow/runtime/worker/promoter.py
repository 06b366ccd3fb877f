"""The promoter: moves delayed jobs (retries, `delay=`, `at=`) to their streams when they fall due."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.exceptions import RedisError

from tqflow.runtime import clock
from tqflow.runtime.clock import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.worker.context import WorkerContext

log = structlog.get_logger("tqflow.worker")
PROMOTE_BATCH = 500  # most jobs moved by one call; a full batch is followed by another at once


class Promoter:
    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A job got an earlier due time than the promoter sleeps until (the `delayed_wake` channel)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Move due delayed jobs to their streams; sleep until the next due time or a wake-up."""
        keys = self.context.keys
        while not stop.is_set():
            try:
                moved, next_due = await self.context.scripts.run(calls.promote(keys, now_ms(), PROMOTE_BATCH))
            except (RedisError, OSError) as err:  # keep promoting once Redis is back
                log.warning("promote failed; retrying", error=repr(err))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                continue
            if moved >= PROMOTE_BATCH:
                continue
            sleep = self.context.settings.max_promote_sleep
            if next_due >= 0:
                sleep = min(sleep, max(0.0, (next_due - now_ms()) / 1000))
            self._wake.clear()
            await clock.wait(self._wake, sleep)  # a test moving the clock wakes it too (runtime/clock.py)
