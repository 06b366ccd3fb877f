"""Aging: entries that waited past `aging_ms` move up to `aging_to`, so a busy higher level cannot starve
a lower one for ever (any worker may run it; the script is atomic)."""

from __future__ import annotations

import asyncio

import structlog

from tqflow.plan import Priority
from tqflow.runtime import clock
from tqflow.runtime.clock import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.worker.context import WorkerContext

log = structlog.get_logger("tqflow.worker")


class Aging:
    def __init__(self, context: WorkerContext) -> None:
        self.context = context

    async def run(self, stop: asyncio.Event) -> None:
        """Move entries that waited past `aging_ms` to `aging_to`, every quarter of `aging_ms`."""
        settings = self.context.settings
        period = max(0.1, settings.aging_ms / 4000)
        top = int(Priority.parse(settings.aging_to))
        while not stop.is_set():
            await clock.wait(stop, period)
            call = calls.age(self.context.keys, now_ms(), settings.aging_ms, top, settings.queues)
            try:
                await self.context.scripts.run(call)
            except Exception as err:
                log.warning("aging failed", error=repr(err))
