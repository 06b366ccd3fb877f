"""The worker's job slots: which jobs hold one, and a wake-up for the fetcher when one frees up.

A job holds a slot from its start until its body ends. An attempt whose end is being written no longer
holds one (it stays fenced by its token and covered by its lease until the write lands).

The fetchers of a worker that serves several partitions (runtime/partitions.py) share its slots: each
reserves the slots it asks a fetch for while the call is in flight, so together they never start more
jobs than the concurrency. Waiting fetchers are woken in the order they began to wait, and a fetcher waits
again behind the others after its turn: busy partitions take the free slots in turn. A fetcher that found
nothing blocks on its streams holding one slot only while more slots are free than fetchers wait for one;
else it waits its turn too, so idle partitions never keep the slots from busy ones."""

from __future__ import annotations

import asyncio
import contextlib


class Slots:
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._held: set[tuple[int | None, str]] = set()
        self.reserved = 0  # asked for by fetches in flight
        self.waiting = 0  # fetchers waiting for a free slot (an idle one leaves the slots to them)
        self._room = asyncio.Event()

    def free(self) -> int:
        return self.concurrency - len(self._held) - self.reserved

    def reserve(self, count: int) -> None:
        self.reserved += count

    def unreserve(self, count: int) -> None:
        """Give back reserved slots (the jobs a fetch brought take theirs with `take`, at once after)."""
        self.reserved -= count
        if count > 0:
            self._room.set()

    def held(self) -> int:
        """How many jobs hold a slot (their body has not ended)."""
        return len(self._held)

    def any_held(self) -> bool:
        return bool(self._held)

    def take(self, job_id: str, partition: int | None = None) -> None:
        """`partition`: the job's data partition. A lean id is unique only within its partition (two
        partitions' streams can hand out the same entry id), and the partition workers share these slots."""
        self._held.add((partition, job_id))

    def release(self, job_id: str, partition: int | None = None) -> None:
        self._held.discard((partition, job_id))
        self._room.set()

    async def wait_for_room(self, timeout: float) -> None:
        """Until a slot is released, or `timeout` seconds (the caller looks again either way)."""
        self._room.clear()
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), timeout)
        finally:
            self.waiting -= 1
