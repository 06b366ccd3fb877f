"""Recovery (jobs of dead workers or expired leases run again), work stealing and hand-back.

Every decision is one Lua script that checks the job's state, worker and lease, so racing reclaimers,
a worker that comes back from a pause, and a late ack all change nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, ResponseError

from tqflow.runtime.cluster.contact import Contact, silence_limit_ms
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.scripts import Scripts, missing_function

log = structlog.get_logger("tqflow.cluster")
PAGE = 200


@dataclass
class ReclaimCounts:
    reclaimed: int = 0
    dead: int = 0
    stolen: int = 0
    cleaned: int = 0

    def add(self, other: list[int]) -> None:
        self.reclaimed += int(other[0])
        self.dead += int(other[1])
        if len(other) > 2:
            self.stolen += int(other[2])
            self.cleaned += int(other[3])

    def __bool__(self) -> bool:
        return bool(self.reclaimed or self.dead or self.stolen or self.cleaned)


class Reclaimer:
    """The leader reclaims for the whole deployment; an idle worker also steals from its own queues."""

    def __init__(
        self,
        redis: Redis,
        keys: ClusterKeys,
        name: str,
        queues: list[str],
        settings: ClusterSettings,
        is_leader: Callable[[], bool],
        is_idle: Callable[[], bool],
        contact: Contact | None = None,
    ) -> None:
        self.redis, self.keys, self.name, self.settings = redis, keys, name, settings
        self.queues = queues
        self.scripts = Scripts(redis)
        self.is_leader, self.is_idle = is_leader, is_idle
        # F22: fed by this node's heartbeats, so no worker is judged dead on a silence this node shared;
        # None for a reclaimer without heartbeats of its own (tests, tools): the scripts' age check only
        self.contact = contact
        # at least a second: a busy host's own round trips must not void its calls (a refused pass only
        # waits for the next one), and the outages this guards against last seconds
        self.max_age_ms = max(1000, silence_limit_ms(settings.dead_after_ms, settings.heartbeat_ms))
        self._redis_clock = (0, 0.0)  # Redis's TIME (ms) and this host's monotonic clock at one reading
        self._asked = 0.0  # monotonic: when this pass's last step began (see `_quick`)
        self._held_up = False  # this pass stopped on a reply that came too late

    async def read_clock(self) -> None:
        """Read Redis's clock, so each recovery call can say when it was made by that clock (the
        scripts refuse one an outage held up), whatever this host's clock says."""
        try:
            seconds, micros = await self.redis.time()
            redis_ms = int(seconds) * 1000 + int(micros) // 1000
        except ResponseError:  # a topology that does not route TIME: the corrected clock (F18)
            redis_ms = now_ms()
        self._redis_clock = (redis_ms, time.monotonic())

    def _quick(self) -> bool:
        """Before each call of a pass: whether the last step (its Redis reply included) took no longer than
        a worker may be silent. A reply held up longer (Redis stopped, or this host stalled) came after
        a silence this node shared, so the judgement made before it is void (F22): `sent_ms` would read
        fresh again, and the heartbeat that starts the contact's grace may not have been heard yet. The
        pass stops; the next one judges again, after that grace."""
        now = time.monotonic()
        if (now - self._asked) * 1000 > self.max_age_ms:
            self._held_up = True
        self._asked = now
        return not self._held_up

    def sent_ms(self) -> int:
        redis_ms, at = self._redis_clock
        return redis_ms + int((time.monotonic() - at) * 1000)

    async def all_streams(self) -> list[str]:
        queues = sorted({str(q) for q in await self.redis.smembers(self.keys.base.queues)} | set(self.queues))
        return [s for q in queues for s in self.keys.base.streams(q)]

    async def sweep(self, streams: list[str], steal_ms: int = 0) -> ReclaimCounts:
        """The pending entries of `streams`, a page a call: the first page of every stream in one round trip
        (a pass over an idle deployment is that one round trip, not one a stream), then the rest of each."""
        counts = ReclaimCounts()
        min_idle = steal_ms or self.settings.heartbeat_ms
        if not streams or not self._quick():
            return counts

        def page(stream: str, cursor: str) -> calls.ScriptCall:
            return calls.reclaim(
                self.keys,
                stream,
                now_ms(),
                min_idle,
                PAGE,
                cursor,
                self.settings.max_deliveries,
                steal_ms,
                self.name,
                self.sent_ms(),
                self.max_age_ms,
            )

        more: list[tuple[str, str]] = []
        firsts = await self._first_pages([page(stream, "-") for stream in streams])
        for stream, reply in zip(streams, firsts, strict=True):
            if reply is not None:
                counts.add(reply[:4])
                if reply[4]:
                    more.append((stream, f"({reply[4]}"))
        for stream, cursor in more:
            while cursor:
                if not self._quick():
                    return counts
                try:
                    reply = await self.scripts.run(page(stream, cursor))
                except ResponseError as err:  # NOGROUP: the stream was deleted since
                    if "NOGROUP" not in str(err):
                        raise
                    break
                counts.add(reply[:4])
                cursor = f"({reply[4]}" if reply[4] else ""
        return counts

    async def _first_pages(self, pages: list[calls.ScriptCall]) -> list[Any]:
        """The calls' replies, sent in one pipeline; None for a stream nobody reads yet (NOGROUP). A call the
        server could not run from its cache (a restart or a flush emptied it) is run again alone, which
        loads the scripts (Scripts.run)."""
        if self.scripts.functions is None:  # the pipeline's form (FCALL or EVALSHA) is known once loaded
            await self.scripts.ensure_loaded()
        async with self.redis.pipeline(transaction=False) as pipe:
            for call in pages:
                self.scripts.queue(pipe, call)
            replies = await pipe.execute(raise_on_error=False)
        out: list[Any] = []
        for call, reply in zip(pages, replies, strict=True):
            if isinstance(reply, ResponseError) and ("NOSCRIPT" in str(reply) or missing_function(reply)):
                try:
                    reply = await self.scripts.run(call)
                except ResponseError as err:
                    reply = err
            if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
                out.append(None)
            elif isinstance(reply, BaseException):
                raise reply
            else:
                out.append(reply)
        return out

    async def expired_leases(self) -> ReclaimCounts:
        counts = ReclaimCounts()
        while self._quick():
            reply = await self.scripts.run(
                calls.leases(
                    self.keys, now_ms(), PAGE, self.settings.max_deliveries, self.sent_ms(), self.max_age_ms
                )
            )
            counts.add([*reply, 0, 0])
            if int(reply[0]) + int(reply[1]) < PAGE:
                return counts
        return counts

    async def reap_registry(self, streams: list[str]) -> None:
        """Forget workers whose record expired, once the sweep reclaimed everything they held."""
        cutoff = now_ms() - self.settings.dead_after_ms
        names: Any = await self.redis.zrangebyscore(self.keys.workers, "-inf", cutoff)
        for name in names:
            if not await self.redis.exists(self.keys.worker(name)) and await forget_consumer(
                self.redis, self.keys, name, streams
            ):
                await self.redis.zrem(self.keys.workers, name)

    async def once(self) -> ReclaimCounts:
        counts = ReclaimCounts()
        if self.contact is not None and not self.contact.may_judge():  # the live workers beat first
            return counts
        leading = self.is_leader()
        stealing = self.settings.steal_after_ms > 0 and self.is_idle()
        self._asked, self._held_up = time.monotonic(), False
        if leading or stealing:
            await self.read_clock()
        if leading:
            streams = await self.all_streams()
            counts = await self.sweep(streams)
            lease_counts = await self.expired_leases()
            counts.reclaimed += lease_counts.reclaimed
            counts.dead += lease_counts.dead
            if not self._held_up:
                await self.reap_registry(streams)
        if stealing and not self._held_up:
            own = [s for q in self.queues for s in self.keys.base.streams(q)]
            stolen = await self.sweep(own, steal_ms=self.settings.steal_after_ms)
            counts.stolen += stolen.stolen
        if self._held_up:
            log.warning("redis answered a recovery call late: the pass stopped", worker=self.name)
        if counts:
            log.info("reclaimed", worker=self.name, **counts.__dict__)
        return counts

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.once()
            except OutOfMemoryError:  # F14: the scripts refuse whole when Redis is full; retried next pass
                log.warning("redis is full (maxmemory): recovery paused", worker=self.name)
            except Exception as err:  # keep going: the next pass retries
                log.warning("reclaim pass failed", worker=self.name, error=repr(err))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.heartbeat_ms / 1000)


async def hand_back(
    redis: Redis,
    keys: ClusterKeys,
    name: str,
    streams: list[str],
    count_lost: int = 0,
    blamed: Collection[str] = (),
) -> int:
    """Give back every entry this worker holds (running or not started); returns how many jobs.
    `count_lost` (the max deliveries) when the worker crashed: the running attempts of the `blamed` jobs
    count as a lost delivery and are dead-lettered at the limit instead of going back."""
    scripts = Scripts(redis)
    total = 0
    for stream in streams:
        while True:
            try:
                call = calls.hand_back(keys, stream, now_ms(), name, PAGE, count_lost, list(blamed))
                back = int(await scripts.run(call))
            except ResponseError as err:
                if "NOGROUP" not in str(err):
                    raise
                break
            total += back
            pending = await redis.xpending_range(stream, keys.base.group, "-", "+", 1, consumername=name)
            if not pending:
                break
    return total


async def forget_consumer(redis: Redis, keys: ClusterKeys, name: str, streams: list[str]) -> bool:
    """Remove a worker's consumer from the groups of `streams` where it holds nothing (so churn does not
    pile up consumers). Returns False while it still holds entries somewhere."""
    clean = True
    for stream in streams:
        try:
            held = await redis.xpending_range(stream, keys.base.group, "-", "+", 1, consumername=name)
            if held:
                clean = False
            else:
                await redis.xgroup_delconsumer(stream, keys.base.group, name)
        except ResponseError as err:  # NOGROUP: nothing to forget there
            if "NOGROUP" not in str(err):
                raise
    return clean
