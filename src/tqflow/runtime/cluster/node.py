"""A worker's part in the cluster: the components it starts next to its fetch loop, and its
graceful shutdown. The worker stays unaware of the details: it calls `start`, then `shutdown`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import structlog
from redis.asyncio import Redis

from tqflow.runtime.cluster.leader import Leader
from tqflow.runtime.cluster.recovery import Reclaimer, forget_consumer, hand_back
from tqflow.runtime.cluster.registry import Heartbeat
from tqflow.runtime.cluster.retention import DAY_MS, Pruner
from tqflow.runtime.cluster.scheduler import Scheduler
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.executors import Running
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys

log = structlog.get_logger("tqflow.cluster")
THREAD_INTERRUPT_S = 0.5  # how long an interrupted thread job gets to reach a bytecode and stop


class ClusterNode:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        name: str,
        queues: list[str],
        concurrency: int,
        lease_ms: int,
        settings: ClusterSettings,
        running: Callable[[], int],
        keep_runs_ms: int = 7 * DAY_MS,
        control: Redis | None = None,
    ) -> None:
        self.redis, self.name, self.queues, self.settings = redis, name, queues, settings
        self.keys = ClusterKeys(keys)
        self.heartbeat = Heartbeat(redis, self.keys, name, queues, concurrency, lease_ms, settings)
        self.leader = Leader(redis, self.keys, name, settings.leader_lease_ms)
        self.reclaimer = Reclaimer(
            redis,
            self.keys,
            name,
            queues,
            settings,
            self.leader.is_leader,
            lambda: running() < concurrency,
            self.heartbeat.contact,
        )
        self.scheduler = Scheduler(redis, self.keys, settings, self._holder)
        self.pruner = Pruner(redis, keys, keep_runs_ms, self.leader.is_leader, control=control)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _holder(self) -> str | None:
        return self.leader.holder if self.leader.is_leader() else None

    async def start(self) -> None:
        await self.heartbeat.beat()  # registered before the first fetch
        self._tasks = [
            asyncio.create_task(self.heartbeat.run(self._stop)),
            asyncio.create_task(self.leader.run(self._stop)),
            asyncio.create_task(self.reclaimer.run(self._stop)),
            asyncio.create_task(self.pruner.run(self._stop)),
        ]
        if self.settings.scheduler:
            self._tasks.append(asyncio.create_task(self.scheduler.run(self._stop, self.leader.changed)))

    async def shutdown(
        self,
        in_flight: set[asyncio.Task[Any]],
        blamed: Collection[str] = (),
        threads: Callable[[], Mapping[asyncio.Task[Any], Running]] | None = None,
        landed: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Let in-flight jobs finish within the grace period, hand back the rest, leave the cluster.
        Returns how many jobs were handed back. `blamed`: the worker stops because it failed, and these
        jobs' attempts count as a lost delivery (a job that crashes its worker is dead-lettered after
        `max_deliveries`, never re-queued forever). `threads`: the handlers whose job runs in a thread.

        A job in a thread cannot be cancelled, only interrupted at its next bytecode: one blocked in a C
        call runs on. Handing it back then ran it twice at once, here and elsewhere (1.8 s in the fault run),
        so such a job is not handed back: the worker waits for it (heartbeats go on, so its lease holds)
        and its attempt ends as usual. `landed`: awaited once the handlers are over, before the heartbeat
        stops and anything is handed back: the ends they posted are written first (a handler does not
        wait for its end's write, worker/finisher.py), else a job that ran to its end would be handed
        back and run again."""
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=self.settings.grace_s)
        unfinished = [t for t in in_flight if not t.done()]
        in_threads = threads() if threads is not None and unfinished else {}
        for task in unfinished:  # stop them here first, so no attempt runs on while it restarts elsewhere
            running = in_threads.get(task)
            if running is None:
                task.cancel()
            else:
                running.handing_back = True
                running.interrupt_thread()
        threaded = [t for t in unfinished if t in in_threads]
        if threaded:
            await asyncio.wait(threaded, timeout=THREAD_INTERRUPT_S)
            stuck = [t for t in threaded if not t.done()]
            for task in stuck:  # its interrupt would land when the C call returns: take it back
                in_threads[task].keep_thread()
            if stuck:
                log.warning(
                    "jobs in threads outlived the grace period and cannot be interrupted (blocked outside"
                    " Python); waiting for them to end, they are not handed back",
                    worker=self.name,
                    jobs=len(stuck),
                )
                await asyncio.wait(stuck)
        await asyncio.gather(*unfinished, return_exceptions=True)
        if landed is not None:
            await landed()
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        streams = [s for q in self.queues for s in self.keys.base.streams(q)]
        lost = self.settings.max_deliveries if blamed else 0
        back = await hand_back(self.redis, self.keys, self.name, streams, lost, blamed)
        await forget_consumer(self.redis, self.keys, self.name, streams)
        await self.heartbeat.deregister()
        if back:
            log.info("handed back unfinished jobs", worker=self.name, jobs=back)
        return back
