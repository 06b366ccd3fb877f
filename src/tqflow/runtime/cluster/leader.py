"""Leader election: one worker at a time holds a lease with an epoch (its fencing token).

Whatever the leader writes for its singleton duties is checked against `holder` ("worker:epoch")
inside the writing script, so a leader that was paused past its lease can no longer act.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.asyncio import Redis

from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.scripts import Scripts

log = structlog.get_logger("tqflow.cluster")


class Leader:
    def __init__(self, redis: Redis, keys: ClusterKeys, name: str, lease_ms: int) -> None:
        self.redis, self.keys, self.name, self.lease_ms = redis, keys, name, lease_ms
        self.scripts = Scripts(redis)
        self.epoch = 0
        self._until = 0.0  # monotonic deadline of our lease, as far as we know
        self.changed = asyncio.Event()

    @property
    def holder(self) -> str:
        return f"{self.name}:{self.epoch}"

    def is_leader(self) -> bool:
        # Stop acting a little before the lease ends, so two leaders never overlap by our clock.
        return self.epoch > 0 and asyncio.get_running_loop().time() < self._until

    async def campaign(self, resign: bool = False) -> int:
        asked = asyncio.get_running_loop().time()
        epoch = int(
            await self.scripts.run(
                calls.leader(self.keys, now_ms(), self.name, self.lease_ms, self.epoch, resign)
            )
        )
        if epoch != self.epoch:
            log.info("leadership changed", worker=self.name, epoch=epoch, leader=epoch > 0)
            self.changed.set()
        self.epoch = epoch
        self._until = asked + self.lease_ms / 1000 * 0.8 if epoch else 0.0
        return epoch

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.campaign()
                except Exception as err:
                    log.warning("leader election failed", worker=self.name, error=repr(err))
                    self.epoch = 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.lease_ms / 3000)
        finally:
            if self.epoch:
                with contextlib.suppress(Exception):
                    await self.campaign(resign=True)


async def current_leader(redis: Redis, keys: ClusterKeys) -> tuple[str, int] | None:
    value = await redis.get(keys.leader)
    if value is None:
        return None
    name, _, epoch = str(value).rpartition(":")
    return name, int(epoch)
