"""The fetcher: takes jobs from the queue streams by priority weights, as many as there are free slots,
and hands each attempt to the runner. Reading and starting is one script call for a whole batch
(fetch.lua); an idle worker blocks on the streams and starts what arrives: a lean job's delivery is its
start (store/lean.py), any other entry is started by start_many.lua."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import structlog
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError

from tqflow.plan import LEVELS
from tqflow.runtime.priorities import FetchPlanner
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls, lean
from tqflow.runtime.worker.attempt import Attempt
from tqflow.runtime.worker.context import WorkerContext
from tqflow.runtime.worker.runner import Runner
from tqflow.runtime.worker.slots import Slots

log = structlog.get_logger("tqflow.worker")


WAKE_HOLD_S = 0.002  # the most a woken worker holds its next fetch for the jobs it was woken for
# A worker holds only when its blocking read waited this long: back to back (the next job submitted as soon
# as the last one ended, 0.5-0.7 ms apart here) the hold left the worker unblocked when the next job came,
# which then waited for the held fetch (bench/latency_probe.py, quiet: total p50 0.52 -> 0.63 ms back to back,
# 0.79 -> 0.67 ms with 3 ms between jobs; docs/benchmarks.md).
IDLE_BEFORE_HOLD_S = 0.002
# After a wake by plain lean jobs (a delivery started each), the next read is the blocking read again, not a
# fetch call: the streams were empty a moment ago, and a fetch that finds nothing costs Redis ~80k
# instructions and the worker a round trip, sent while the woken job's first command is in flight. At most
# this many such reads in a row, then a fetch (a backlog is fetched in batches, limits and fair shares are
# the fetch's); any other entry (a `j` entry: flows, fair shares, limits) makes the next read a fetch.
DIRECT_READS = 4


class Fetcher:
    def __init__(self, context: WorkerContext, planner: FetchPlanner, slots: Slots, runner: Runner) -> None:
        self.context = context
        self.planner = planner
        self.streams = planner.all_streams
        keys = context.keys
        self.places = {
            keys.stream(q, level): (q, level) for q in context.settings.queues for level in range(LEVELS)
        }
        self.slots = slots
        self.runner = runner
        self.culprits: set[str] = set()  # the job whose start made the fetch loop fail

    async def create_groups(self) -> None:
        keys = self.context.keys
        for stream in self.streams:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
                await self.context.redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
        await self.context.redis.sadd(keys.queues, *self.context.settings.queues)

    def _free(self) -> int:
        return min(self.slots.free(), self.context.settings.fetch_batch)

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.context.settings
        token = uuid.uuid4().hex[:12]
        batch = failures = direct = 0
        while not stop.is_set():
            free = self._free()
            if 0 < free < settings.concurrency // 2 and self.slots.any_held():
                await asyncio.sleep(0.002)  # busy: let a few more slots free up, then fetch them in one call
                free = self._free()
            if free <= 0:
                await self.slots.wait_for_room(1.0)
                continue
            batch += 1
            prefix = f"{token}.{batch}."
            held = 0
            try:
                if 0 < direct <= DIRECT_READS:
                    jobs = []  # the last read was a wake by plain lean jobs: block again at once
                else:
                    plan = self.planner.plan(free)
                    self.slots.reserve(free)  # other partitions' fetchers leave them (slots.py)
                    held = free
                    jobs = await self.context.scripts.run(
                        calls.fetch(
                            self.context.keys, now_ms(), settings.name, prefix, settings.lease_ms, free, plan
                        )
                    )
                    direct = 0
                woken = idle = False
                if not jobs:
                    self.slots.unreserve(held)
                    held = 0
                    # Block on the streams holding one slot, unless other fetchers of this worker (its
                    # other partitions) wait for a slot: then wait behind them (slots.py).
                    if self.slots.free() > self.slots.waiting:
                        self.slots.reserve(1)
                        held = 1
                        blocked_at = time.monotonic()
                        jobs, plain = await self._block_for_work(prefix)
                        woken = bool(jobs)
                        direct = direct + 1 if woken and plain else 0
                        # after a wait: an arrival at an idle worker, not the next of a back-to-back stream
                        # of jobs (each submitted as the last one ends), which the hold would slow
                        idle = time.monotonic() - blocked_at >= IDLE_BEFORE_HOLD_S
                    else:
                        direct = 0
                        await self.slots.wait_for_room(settings.block_ms / 1000)
                failures = 0
            except (RedisError, OSError) as err:
                self.slots.unreserve(held)
                direct = 0
                # Redis unreachable or refusing: back off and retry. Attempts started by a reply we lost
                # are reclaimed when their lease runs out (at-least-once).
                failures += 1
                if "OOM" in str(err)[:4] or isinstance(err, OutOfMemoryError):
                    log.warning("redis is full (maxmemory): taking no new work", worker=settings.name)
                else:
                    log.warning("fetch failed; retrying", worker=settings.name, error=repr(err))
                if "NOGROUP" in str(err) or "UNBLOCKED" in str(err):  # a stream was deleted under us
                    with contextlib.suppress(RedisError, OSError):
                        await self.create_groups()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(2.0, 0.05 * 2**failures))
                continue
            self.slots.unreserve(held)  # then at once (no await between) the jobs take their slots
            spawn, name, partition = self.runner.spawn, settings.name, self.context.keys.partition
            handlers = []
            for job in jobs:
                try:
                    handlers.append(spawn(Attempt(job, name, partition)))
                except Exception:
                    self.culprits.add(str(job[0]))
                    raise
            if woken and idle:
                await _hold_after_wake(handlers)
            elif woken:  # let the jobs reach their first await before the next fetch
                await asyncio.sleep(0)

    async def _block_for_work(self, prefix: str) -> tuple[list[Any], bool]:
        """Nothing to read: block until an entry arrives on any stream, then start what arrived. Returns the
        started attempts, and whether each was a plain lean job (started by its delivery)."""
        settings, keys = self.context.settings, self.context.keys
        reply: Any = await self.context.redis.xreadgroup(
            keys.group,
            settings.name,
            dict.fromkeys(self.streams, ">"),
            count=1,
            block=settings.block_ms,
        )
        started: list[Any] = []
        read: list[tuple[str, str, str]] = []
        for stream, entries in reply or []:
            queue, level = self.places[stream]
            for entry_id, fields in entries:
                # A lean job's delivery started its first attempt (store/lean.py): no start script, so an
                # idle worker runs it one round trip sooner. A limited one takes its slots at its start.
                row = lean.first_attempt(queue, level, entry_id, fields)
                if row is not None and not (row[5] and '"lim"' in row[5]):
                    started.append(row)
                else:
                    read.append((str((fields or {}).get("j", "")), stream, entry_id))
        if read:
            call = calls.start_many(keys, now_ms(), settings.name, prefix, settings.lease_ms, read)
            started += await self.context.scripts.run(call)
        return started, not read


async def _hold_after_wake(handlers: list[asyncio.Task[None]]) -> None:
    """An idle worker's latency: the next fetch waits until the jobs that woke it have ended, for at most
    `WAKE_HOLD_S`. Redis writes its replies once per turn of its event loop, after every command it read
    in that turn: a fetch call (a function running a dozen commands) sent while the body's first command is
    in flight lands in the same turn and delays that command's reply, and the replies it wakes (a waiter's
    BLPOP), by the fetch's whole run: measured 0.36 against 0.19-0.27 ms from the body's RPUSH to its
    waiter (bench/latency_probe.py). A worker that is busy never blocks, so never holds."""
    await asyncio.sleep(0)  # the jobs' first steps run before the wait is set up
    if not all(handler.done() for handler in handlers):
        await asyncio.wait(handlers, timeout=WAKE_HOLD_S)
