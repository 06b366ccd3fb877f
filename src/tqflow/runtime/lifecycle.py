"""A deployed flow's life: pause and unpause its schedules, undeploy it, backfill past ticks.

- **Pause** marks the flow (`paused` in its flow hash); the leader's scheduler skips paused flows, so their
  triggers' `last` tick stays where it was. On unpause the scheduler meets the ticks missed meanwhile and
  treats them by the trigger's catch-up policy, exactly as ticks missed while no leader ran.
- **Undeploy** removes the current version (new runs and schedules stop) and keeps every version's plan,
  so runs in progress finish on the version they started with; `cancel_runs` cancels them instead.
  Deploying the flow again makes a new version, continuing the numbering.
- **Backfill** starts the runs a trigger's ticks in a past window would have started. Each tick's run has
  an id derived from (flow, trigger, tick), and the run script refuses a run id that exists, so a tick is
  started once however often it is backfilled; a tick the scheduler already fired is left alone (its tick
  key exists), and each backfilled tick sets that key, so the scheduler never fires it again either.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tqflow.errors import ClientError
from tqflow.plan import FlowPlan, TriggerPlan
from tqflow.runtime.cluster.schedule import next_ticks
from tqflow.runtime.cluster.scheduler import TICK_KEY_TTL_MS, tick_run_call
from tqflow.runtime.deployments import Deployments, FlowNotDeployed
from tqflow.runtime.partitions import Place, RunPlaces
from tqflow.runtime.runs import TERMINAL_RUN_STATES, now_ms
from tqflow.runtime.store import jobrows, runrows
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

MAX_BACKFILL_TICKS = 10_000
RUN_PAGE = 500
NOT_STARTED = ("waiting", "scheduled", "queued", None)  # None: a lean record not made yet


class BackfillError(ClientError, ValueError):
    """A backfill that cannot start: no such trigger, an empty or reversed window, too many ticks."""


@dataclass(frozen=True)
class Undeployed:
    flow: str
    version: int  # the version that was current
    running: list[str] = field(default_factory=list)  # runs still in progress (they keep their version)
    cancelled: list[str] = field(default_factory=list)  # runs cancelled (with cancel_runs)


@dataclass(frozen=True)
class Backfilled:
    tick: int  # ms since the epoch
    run_id: str
    status: str  # started | exists (backfilled before) | fired (the scheduler fired this tick)


def backfill_run_id(flow: str, trigger: str, tick: int) -> str:
    """The run id of a backfilled tick: time-ordered like every run id, and the same for the same tick."""
    digest = hashlib.sha256(f"{flow}\x00{trigger}\x00{tick}".encode()).hexdigest()
    return f"{tick:011x}{digest[:10]}"


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def window_ticks(
    trigger: TriggerPlan, from_ms: int, to_ms: int, limit: int = MAX_BACKFILL_TICKS
) -> list[int]:
    """The trigger's ticks in [from_ms, to_ms], oldest first."""
    if to_ms < from_ms:
        raise BackfillError(
            f"the backfill window ends ({_utc(to_ms)}) before it starts ({_utc(from_ms)}):"
            " give --from before --to"
        )
    ticks: list[int] = []
    after = from_ms - 1
    while True:
        batch = next_ticks(trigger, after, 200)
        for tick in batch:
            if tick > to_ms:
                return ticks
            ticks.append(tick)
            if len(ticks) > limit:
                raise BackfillError(f"the window holds more than {limit} ticks; backfill a shorter window")
        if len(batch) < 200:
            return ticks
        after = batch[-1]


def pick_trigger(flow: FlowPlan, schedule: str | None) -> TriggerPlan:
    """A flow's trigger by name (`cron:0`) or position (`0`); the only one when none is named. Event
    triggers have no ticks to backfill."""
    for index, trigger in enumerate(flow.triggers):
        if trigger.kind == "event" and schedule in (trigger.name, str(index)):
            raise BackfillError(
                f"schedule {trigger.name} of flow `{flow.name}` starts runs on events: no ticks"
            )
    flow = flow.model_copy(update={"triggers": [t for t in flow.triggers if t.kind != "event"]})
    if not flow.triggers:
        raise BackfillError(f"flow `{flow.name}` has no schedule to backfill")
    if schedule is None:
        if len(flow.triggers) > 1:
            names = ", ".join(t.name for t in flow.triggers)
            raise BackfillError(f"flow `{flow.name}` has several schedules ({names}); choose one")
        return flow.triggers[0]
    for index, trigger in enumerate(flow.triggers):
        if schedule in (trigger.name, str(index)):
            return trigger
    names = ", ".join(f"{i} ({t.name})" for i, t in enumerate(flow.triggers))
    raise BackfillError(f"flow `{flow.name}` has no schedule {schedule!r}; it has {names}")


class Lifecycle:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, deployments: Deployments) -> None:
        self.redis, self.keys, self.scripts, self.deployments = redis, keys, scripts, deployments
        self.cluster_keys = ClusterKeys(keys)
        # where the namespace's runs live (the client sets its own, which knows the partitions)
        self.places: Callable[[], Awaitable[RunPlaces]] = self._control_only

    async def _control_only(self) -> RunPlaces:
        return RunPlaces(Place(None, self.redis, self.keys, self.scripts))

    async def pause(self, flow: str) -> int:
        """Stop the flow's schedules; returns the current version."""
        version, _ = await self.deployments.get(flow)
        await self.redis.hset(self.keys.flow(flow), "paused", now_ms())
        return version

    async def unpause(self, flow: str) -> int:
        version, _ = await self.deployments.get(flow)
        await self.redis.hdel(self.keys.flow(flow), "paused")
        return version

    async def paused(self, flow: str) -> bool:
        return bool(await self.redis.hexists(self.keys.flow(flow), "paused"))

    async def undeploy(self, flow: str) -> Undeployed:
        """Remove the current version; the runs in progress are listed (the caller may cancel them)."""
        version, _ = await self.deployments.get(flow)
        indexed = json.loads(await self.redis.hget(self.keys.flow(flow), "events") or "[]")
        async with self.redis.pipeline(transaction=True) as pipe:
            self.deployments.unindex(pipe, flow, indexed)  # emit finds it no more
            pipe.hdel(self.keys.flow(flow), "current", "paused")
            pipe.hset(self.keys.flow(flow), "undeployed", now_ms())
            pipe.srem(self.keys.flows, flow)
            await pipe.execute()
        return Undeployed(flow, version, running=[r async for r in self.running_runs(flow)])

    async def running_runs(self, flow: str) -> AsyncIterator[str]:
        """The ids of the flow's runs that have not ended, oldest first."""
        for place in (await self.places()).all:  # partition by partition (the control slot first)
            start = 0
            while True:
                page = await place.redis.zrange(place.keys.runs, start, start + RUN_PAGE - 1)
                ids = [str(r) for r in page]
                if not ids:
                    break
                async with place.redis.pipeline(transaction=False) as pipe:
                    for run_id in ids:
                        runrows.queue_flow_state(pipe, place.keys, run_id)
                    rows = await pipe.execute()
                for run_id, (name, state) in zip(ids, rows, strict=True):
                    if name == flow and state is not None and state not in TERMINAL_RUN_STATES:
                        yield place.shown(run_id)
                start += RUN_PAGE

    async def not_reached(self, flow: str, jobs: list[str]) -> dict[str, list[str]]:
        """For each run of `flow` in progress, which of `jobs` it has not started yet (run id -> jobs).

        A deploy that removes or changes those jobs does not change these runs: they keep their version."""
        if not jobs:
            return {}
        found: dict[str, list[str]] = {}
        places = await self.places()
        async for run_id in self.running_runs(flow):
            place, local = places.at(run_id)
            states = await jobrows.states(place.redis, place.keys, [f"{local}.{name}" for name in jobs])
            pending = [name for name, state in zip(jobs, states, strict=True) if state in NOT_STARTED]
            if pending:
                found[run_id] = pending
        return found

    async def backfill(
        self,
        flow_name: str,
        from_ms: int,
        to_ms: int,
        schedule: str | None = None,
        rate: float = 10.0,
    ) -> AsyncIterator[Backfilled]:
        """Start the runs of the ticks in [from_ms, to_ms] that never ran, at most `rate` a second."""
        if rate <= 0:
            raise BackfillError(
                f"backfill of flow `{flow_name}`: the rate must be positive (runs a second), got {rate!r}"
            )
        version, flow = await self.deployments.get(flow_name)
        trigger = pick_trigger(flow, schedule)
        for tick in window_ticks(trigger, from_ms, to_ms):
            started = asyncio.get_running_loop().time()
            yield await self._backfill_tick(version, flow, trigger, tick)
            await asyncio.sleep(max(0.0, 1 / rate - (asyncio.get_running_loop().time() - started)))

    async def _backfill_tick(
        self, version: int, flow: FlowPlan, trigger: TriggerPlan, tick: int
    ) -> Backfilled:
        local = backfill_run_id(flow.name, trigger.name, tick)
        # a derived id has one place (its hash): a repeated backfill of the tick finds its run there
        place = (await self.places()).hashed(local)
        run_id = place.shown(local)
        tick_key = self.cluster_keys.tick(flow.name, trigger.name, tick)
        fired = await self.redis.get(tick_key)
        if fired is not None and str(fired) != run_id:
            return Backfilled(tick, str(fired), "fired")
        status = "started"
        try:
            await place.scripts.run(
                tick_run_call(place.keys, local, tick, trigger, version, flow, backfill="1")
            )
        except ResponseError as err:
            if "already exists" not in str(err):
                raise
            status = "exists"
        await self.redis.set(tick_key, run_id, nx=True, px=TICK_KEY_TTL_MS)
        return Backfilled(tick, run_id, status)


__all__ = [
    "BackfillError",
    "Backfilled",
    "FlowNotDeployed",
    "Lifecycle",
    "Undeployed",
    "backfill_run_id",
    "pick_trigger",
    "window_ticks",
]
