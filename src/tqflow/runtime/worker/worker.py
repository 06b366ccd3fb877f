"""The worker: composes its roles, each one class in this package, as `cluster/node.py` composes the
cluster roles, and runs them until it is told to stop.

- `Fetcher` (fetcher.py): reads and starts a batch of jobs by priority weights, one script call.
- `Runner` (runner.py): runs each attempt in its own task, decides what a failure does next.
- `Finisher` (finisher.py): writes the ends of attempts, batched, fenced by each attempt's token.
- `Promoter` (promoter.py), `CancelListener` (cancels.py), `Aging` (aging.py): the background loops, with
  `SubflowSteps` (runtime/subflows.py), which starts sub-flow jobs' child runs and reads their ends.
- `Slots` (slots.py): which jobs hold a slot; `WorkerContext` (context.py): what the roles share.

Every state change goes through a Lua script fenced by the attempt's token (see store/lua/).

In a namespace of several partitions (runtime/partitions.py) the worker also runs one partition worker
per data partition: a `Worker` of that partition's keys and connection with the same roles, sharing this
worker's slots and executors (so the concurrency holds over all of them), registered in its partition
and with its partition's recovery; the control slot's worker alone publishes the catalog and fires
schedules.
`Worker.run` starts the background loops (`background()`) and any `components` added by other
subsystems, the finisher and the cluster node, then the fetcher; at the stop, the cluster node's grace
period, then the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import structlog
from redis.asyncio import Redis

from tqflow.errors import SettingError
from tqflow.runtime import catalog, partitions
from tqflow.runtime.cluster.node import ClusterNode
from tqflow.runtime.connection import carry_bytes, for_partition, pin
from tqflow.runtime.executors import Executors, Running
from tqflow.runtime.hooks import WorkerHooks
from tqflow.runtime.packing import pack_with_hiredis
from tqflow.runtime.priorities import FetchPlanner
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts
from tqflow.runtime.subflows import SubflowSteps
from tqflow.runtime.task import Task
from tqflow.runtime.worker.aging import Aging
from tqflow.runtime.worker.cancels import CancelListener
from tqflow.runtime.worker.context import WorkerContext
from tqflow.runtime.worker.fetcher import Fetcher
from tqflow.runtime.worker.finisher import Finisher
from tqflow.runtime.worker.promoter import Promoter
from tqflow.runtime.worker.runner import Runner
from tqflow.runtime.worker.settings import WorkerSettings
from tqflow.runtime.worker.slots import Slots
from tqflow.runtime.worker.transient import REDIS_DOWN

log = structlog.get_logger("tqflow.worker")
Component = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Worker:
    def __init__(
        self,
        redis: Redis,
        tasks: Mapping[str, Task[Any, Any]],
        namespace: str = "tqflow",
        settings: WorkerSettings | None = None,
        hooks: Sequence[WorkerHooks] = (),
        *,
        partition: int | None = None,
        shared: tuple[Slots, Executors] | None = None,
        control: Redis | None = None,
    ) -> None:
        self.hooks = list(hooks)
        self.given_hooks = tuple(hooks)
        refuse_bytes_replies(redis)
        carry_bytes(redis)  # binary payload bodies (store/payloads.py)
        pack_with_hiredis(redis)  # a caller's client packs as `connect`'s do (runtime/packing.py)
        self.redis = redis
        self.tasks = dict(tasks)
        self.partition = partition
        self.keys = Keys(namespace, partition)
        # a cluster connection goes to the node of this namespace's (or partition's) slot
        pin(redis, namespace, None if partition is None else str(partition))
        self.scripts = Scripts(redis)
        self.settings = settings or WorkerSettings()
        if partition is not None:  # triggers live in the control slot: its worker fires them
            self.settings = dataclasses.replace(
                self.settings, cluster=dataclasses.replace(self.settings.cluster, scheduler=False)
            )
        self.context = WorkerContext(redis, self.keys, self.scripts, self.settings, self.hooks)
        self.planner = FetchPlanner(self.keys, self.settings.queues, self.settings.weights)
        self.streams = self.planner.all_streams
        self.components: list[Component] = []  # more background loops (cluster: heartbeats, recovery …)
        self.shared = shared is not None
        if shared is None:
            self.slots = Slots(self.settings.concurrency)
            self.executors = Executors(self.settings.concurrency, self.settings.process_pool)
        else:
            self.slots, self.executors = shared
        self.partition_workers: list[Worker] = []  # one per data partition, made by `run`
        self.finisher = Finisher(self.context, self.slots)
        self.runner = Runner(self.context, self.tasks, self.slots, self.finisher, self.executors)
        self.fetcher = Fetcher(self.context, self.planner, self.slots, self.runner)
        self.promoter = Promoter(self.context)
        # sub-flow jobs' child runs; deploys are read over the control slot's connection
        self.subflows = SubflowSteps(redis, self.keys, self.scripts, control)
        self.cancels = CancelListener(self.context, self.runner, self._wake_timers)
        self.aging = Aging(self.context)
        self.cluster = ClusterNode(
            redis,
            self.keys,
            self.settings.name,
            self.settings.queues,
            self.settings.concurrency,
            self.settings.lease_ms,
            self.settings.cluster,
            lambda: len(self.runner.in_flight),
            keep_runs_ms=self.settings.keep_runs_ms,
            control=control,
        )
        self.hooks.append(self.cluster.heartbeat)

    def _wake_timers(self) -> None:
        """The `delayed_wake` channel: a job fell due earlier, or a sub-flow job waits in the outbox."""
        self.promoter.wake()
        self.subflows.wake()

    @property
    def active(self) -> dict[str, Running]:
        """Job id -> the call in progress, for every job whose body runs here now (a partition's job by
        its id in its partition)."""
        found = dict(self.runner.active)
        for worker in self.partition_workers:
            found.update(worker.active)
        return found

    @property
    def completed(self) -> int:
        """How many attempts this worker ended (a stale end, one no longer ours, not counted)."""
        return self.finisher.completed + sum(w.completed for w in self.partition_workers)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then let in-flight jobs finish."""
        if self.partition is not None:
            await self._work(stop)
            return
        await catalog.publish(self.redis, self.keys, self.tasks, self.settings.name)  # runtime/catalog.py
        count = await partitions.count_of(self.redis, self.keys)
        if count <= 1:
            await self._work(stop)
            return
        self.partition_workers = [
            Worker(
                for_partition(self.redis, self.keys.namespace, k),
                self.tasks,
                self.keys.namespace,
                self.settings,
                self.given_hooks,
                partition=k,
                shared=(self.slots, self.executors),
                control=self.redis,
            )
            for k in range(count)
        ]
        ending = asyncio.Event()  # the partition workers stop when this one does (grace periods together)
        others = [asyncio.create_task(w.run(ending)) for w in self.partition_workers]
        # A partition worker that fails stops the whole worker: a process serving only some partitions
        # would look alive while jobs wait in the others.
        halt = asyncio.Event()
        watch = asyncio.create_task(_first_of(stop, others, halt))
        try:
            await self._work(halt, before_stop=ending)
        finally:
            ending.set()
            watch.cancel()
            ended = await asyncio.gather(*others, return_exceptions=True)
            self.executors.shutdown()
            for worker in self.partition_workers:
                if worker.redis is not self.redis:
                    await worker.redis.aclose()
        failed = [e for e in ended if isinstance(e, BaseException)]
        if failed:
            raise failed[0]

    async def _work(self, stop: asyncio.Event, before_stop: asyncio.Event | None = None) -> None:
        """This partition's part: set up, run the roles until `stop`, then the grace period."""
        # skipped dependents and cancelled idle jobs end in scripts that no worker calls with a TTL
        await self.redis.set(self.keys.keep_results, self.settings.result_ttl_ms)
        await self.fetcher.create_groups()
        await self.scripts.ensure_loaded()
        await self.scripts.run(calls.limit_holders(self.keys, now_ms()))  # once a namespace: an older layout
        await self.cluster.start()
        # What start-up made (modules, tasks, plans, pydantic models) stays for the process's life: leave it
        # out of every later collection, so the collector's passes scan only what jobs allocate.
        gc.freeze()
        helpers = [asyncio.create_task(self._resilient(c, stop)) for c in self.background()]
        finishing = asyncio.create_task(self.finisher.run())
        with contextlib.suppress(TimeoutError):  # cancellations sent from now on reach this worker
            await asyncio.wait_for(self.cancels.subscribed.wait(), 5)
        log.info(
            "worker started",
            worker=self.settings.name,
            queues=self.settings.queues,
            tasks=len(self.tasks),
            **({} if self.partition is None else {"partition": self.partition}),
        )
        blamed: set[str] = set()
        try:
            await self._resilient(self.fetcher.run, stop)
        except Exception:
            # The worker itself failed: blame the job it was starting, else the jobs it was running (F15).
            blamed = self.fetcher.culprits or self.runner.handled()
            raise
        finally:
            if before_stop is not None:  # the partition workers' grace periods run beside this one's
                before_stop.set()
            # grace period, then hand back the rest
            await self.cluster.shutdown(
                self.runner.in_flight, blamed, self.runner.thread_jobs, self._ends_landed
            )
            self.finisher.close()
            await asyncio.gather(finishing, return_exceptions=True)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if not self.shared and not self.partition_workers:
                self.executors.shutdown()
            log.info("worker stopped", worker=self.settings.name, completed=self.finisher.completed)

    async def _ends_landed(self) -> None:
        """The handlers are over: write the ends they posted (the finisher retries a Redis away for
        `FINISH_RETRY_S`, then leaves those attempts to lease recovery) before anything is handed back."""
        self.finisher.close()
        await self.finisher.landed()

    async def _resilient(self, loop: Component, stop: asyncio.Event) -> None:
        """Run one loop; while Redis is unreachable (restarting, a network cut), wait and start it again.
        F5: a Redis restart used to end the fetch loop, and with it the worker, and kill the promoter."""
        pause = 0.1
        while not stop.is_set():
            try:
                await loop(stop)
                return
            except REDIS_DOWN as err:
                name = getattr(loop, "__qualname__", repr(loop))
                log.warning("redis unreachable; retrying", loop=name, error=repr(err), pause=pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                pause = min(pause * 2, 1.0)

    def background(self) -> list[Component]:
        loops: list[Component] = [self.promoter.run, self.cancels.run, self.subflows.run, *self.components]
        if self.settings.aging_ms > 0:
            loops.append(self.aging.run)
        return loops


async def _first_of(stop: asyncio.Event, tasks: list[asyncio.Task[None]], halt: asyncio.Event) -> None:
    """Set `halt` once `stop` is set or any of `tasks` ends."""
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        halt.set()


def refuse_bytes_replies(redis: Any) -> None:
    """A client that answers bytes (redis-py's default, without `decode_responses=True`) would make every
    reply compare unequal to the strings the worker expects: its jobs would look "running" forever."""
    pool = getattr(redis, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if isinstance(kwargs, dict) and not kwargs.get("decode_responses", False):
        raise SettingError(
            "the worker's Redis client answers bytes: create it with decode_responses=True, "
            "or use tqflow.runtime.connection.connect(url)"
        )
