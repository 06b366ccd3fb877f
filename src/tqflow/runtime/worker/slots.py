"""The worker's job slots: which jobs hold one, and a wake-up for the fetcher when one frees up.

A job holds a slot from its start until its body ends. An attempt whose end is being written no longer
holds one (it stays fenced by its token and covered by its lease until the write lands)."""

from __future__ import annotations

import asyncio
import contextlib


class Slots:
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._held: set[str] = set()
        self._room = asyncio.Event()

    def free(self) -> int:
        return self.concurrency - len(self._held)

    def any_held(self) -> bool:
        return bool(self._held)

    def take(self, job_id: str) -> None:
        self._held.add(job_id)

    def release(self, job_id: str) -> None:
        self._held.discard(job_id)
        self._room.set()

    async def wait_for_room(self, timeout: float) -> None:
        """Until a slot is released, or `timeout` seconds (the caller looks again either way)."""
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout)
