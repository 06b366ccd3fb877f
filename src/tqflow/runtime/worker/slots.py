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
import collections
import contextlib


class Slots:
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._held: set[tuple[int | None, str]] = set()
        self.reserved = 0  # asked for by fetches in flight
        self.waiting = 0  # fetchers waiting for a free slot (an idle one leaves the slots to them)
        # The waiting fetchers, oldest first. A freed slot wakes the oldest, and only as many as there are
        # free slots: one event waking them all let the fetchers of empty partitions, woken first and
        # fetching nothing in turn, keep the slots reserved every time a busy one looked (it then waited
        # again, forever: tests/runtime/test_partition_layout.py).
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._wake_soon = False

    def free(self) -> int:
        return self.concurrency - len(self._held) - self.reserved

    def reserve(self, count: int) -> None:
        self.reserved += count

    def unreserve(self, count: int) -> None:
        """Give back reserved slots (the jobs a fetch brought take theirs with `take`, at once after)."""
        self.reserved -= count
        if count > 0:
            self._room()

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
        """Free the job's slot; nothing for one not held (the finisher freed it when the body ended, and
        the handler's end asks again)."""
        held, key = self._held, (partition, job_id)
        if key in held:
            held.discard(key)
            self._room()

    def _room(self) -> None:
        """Slots may be free: wake waiters once this step is over (a fetch's jobs take their slots right
        after it gives its reservation back, in the same step)."""
        if self._waiters and not self._wake_soon:
            self._wake_soon = True
            asyncio.get_running_loop().call_soon(self._wake)

    def _wake(self) -> None:
        self._wake_soon = False
        room = self.free()
        while room > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1

    async def wait_for_room(self, timeout: float) -> None:
        """Until a slot is free for this caller (waiters take turns, oldest first), or `timeout` seconds
        (the caller looks again either way)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            self.waiting -= 1
            if not waiter.done() or waiter.cancelled():  # timed out (or cancelled): out of the line
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
