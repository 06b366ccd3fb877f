"""The leader's scheduler: fires the triggers of every deployed flow's current version.

Each (trigger, tick) is fired once: the fire script checks the leader's epoch, moves the trigger's
`last` tick forward only, SET NXes the tick key and creates the run, all in one script. A new leader
continues from `last`, so nothing is fired twice or dropped in a failover; ticks missed while no
leader ran follow the trigger's catch-up policy and are counted when skipped. In a namespace of several
partitions the run goes to a data partition (the hash of its id) through the outbox (cluster/outbox.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import structlog
from redis.asyncio import Redis

from tqflow.plan import FlowPlan, TriggerPlan
from tqflow.runtime import clock
from tqflow.runtime.cluster import outbox
from tqflow.runtime.cluster.schedule import ScheduleError, next_ticks, plan_ticks
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.deployments import Deployments
from tqflow.runtime.expressions import Environment, evaluate
from tqflow.runtime.params import resolve_params
from tqflow.runtime.partitions import RunPlaces, run_places
from tqflow.runtime.runs import TERMINAL_RUN_STATES, job_records, new_run_id, now_ms, run_environment
from tqflow.runtime.store import calls, codec, runrows
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

log = structlog.get_logger("tqflow.scheduler")
TICK_KEY_TTL_MS = 7 * 86_400_000
MAX_SLEEP = 1.0


class Scheduler:
    def __init__(
        self,
        redis: Redis,
        keys: ClusterKeys,
        settings: ClusterSettings,
        holder: Callable[[], str | None],
    ) -> None:
        self.redis, self.keys, self.settings = redis, keys, settings
        self.holder = holder  # "worker:epoch" while this worker leads, else None
        self.scripts = Scripts(redis)
        self.deployments = Deployments(redis, keys.base)
        self._plans: dict[str, tuple[int, FlowPlan]] = {}
        self.fired = 0
        self.places: RunPlaces | None = None  # where runs go, read at the first pass

    async def _places(self) -> RunPlaces:
        if self.places is None:
            self.places = await run_places(self.redis, self.keys.base, self.scripts)
        return self.places

    async def flows(self) -> list[tuple[int, FlowPlan]]:
        """The current version of every deployed flow that has triggers and is not paused (re-read each
        pass, so a new deploy, a pause or an unpause takes effect without a restart)."""
        result = []
        names = await self.deployments.names()
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip, however many flows
            for name in names:
                pipe.hmget(self.keys.base.flow(name), "current", "paused")
            rows = await pipe.execute()
        for name, (current, paused) in zip(names, rows, strict=True):
            if current is None or paused is not None:
                continue  # a paused flow's triggers keep their `last` tick: unpausing meets the missed ones
            cached = self._plans.get(name)
            if cached is None or cached[0] != int(current):
                cached = await self.deployments.get(name, int(current))
                self._plans[name] = cached
            if cached[1].triggers:
                result.append(cached)
        return result

    async def once(self) -> float:
        """One pass over every trigger; returns seconds until the next tick is due (capped)."""
        now = now_ms()
        soonest = now + int(MAX_SLEEP * 1000)
        places = await self._places()
        if places.data:  # hand-offs a leader left between their two steps, first (cluster/outbox.py)
            await outbox.deliver_all(self.redis, self.keys, places)
        for version, flow in await self.flows():
            for trigger in flow.triggers:
                if trigger.kind == "event":
                    continue  # started by each event (runtime/events.py), never by the clock
                holder = self.holder()
                if holder is None:
                    return MAX_SLEEP
                try:
                    nxt = await self.trigger_pass(holder, version, flow, trigger, now)
                except ScheduleError as err:
                    log.error("bad trigger", flow=flow.name, trigger=trigger.name, error=str(err))
                    continue
                if nxt:
                    soonest = min(soonest, nxt)
        return max(0.0, (soonest - now_ms()) / 1000)

    async def trigger_pass(
        self, holder: str, version: int, flow: FlowPlan, trigger: TriggerPlan, now: int
    ) -> int | None:
        key = self.keys.trigger(flow.name, trigger.name)
        await self.redis.hsetnx(key, "last", now)  # first sight: schedule from now on
        raw_last, held, prev_run = await self.redis.hmget(key, "last", "held", "run")
        last = int(str(raw_last or now))
        grace = self.settings.tick_grace_ms
        if held and int(str(held)) > last:
            grace = max(grace, now - int(str(held)) + grace)  # a queued tick is not "missed"
        plan = plan_ticks(trigger, last, now, grace)
        if plan.skipped:
            log.warning(
                "missed ticks skipped by the catch-up policy",
                flow=flow.name,
                trigger=trigger.name,
                count=plan.skipped,
            )
            await self._fire(holder, flow, trigger, plan.skip_upto, "skip", str(plan.skipped), None)
        for tick in plan.fire:
            busy = prev_run is not None and await self._running(str(prev_run))
            if busy and trigger.overlap == "skip":
                await self._fire(holder, flow, trigger, tick, "skip", "1", None)
                continue
            if busy and trigger.overlap == "queue":
                await self.redis.hset(key, "held", tick)
                return now + 200  # look again soon
            prev_run = await self._fire(holder, flow, trigger, tick, "run", "", (version, flow))
        upcoming = next_ticks(trigger, now, 1)
        return upcoming[0] if upcoming else None

    async def _running(self, run_id: str) -> bool:
        place, local = (await self._places()).at(run_id)
        state = await runrows.state(place.redis, place.keys, local)
        return state is not None and state not in TERMINAL_RUN_STATES

    async def _fire(
        self,
        holder: str,
        flow: FlowPlan,
        trigger: TriggerPlan,
        tick: int,
        action: str,
        detail: str,
        run: tuple[int, FlowPlan] | None,
    ) -> str | None:
        places = await self._places()
        if places.data:
            return await self._hand_off(places, holder, flow, trigger, tick, action, detail, run)
        run_id = new_run_id()
        submit = self._run_call(run_id, tick, trigger, run) if run else None
        submit = submit or calls.submit_run(self.keys.base, now_ms(), run_id, "{}", "[]")
        call = calls.fire(
            self.keys,
            flow.name,
            trigger.name,
            tick,
            holder,
            TICK_KEY_TTL_MS,
            action,
            detail or run_id,
            submit,
        )
        result = await self.scripts.run(call)
        outcome = str(result) if isinstance(result, str) else "run"
        if outcome == "run":
            self.fired += 1
            log.info("trigger fired", flow=flow.name, trigger=trigger.name, tick=tick, run=run_id)
            return run_id
        if outcome == "fenced":
            log.warning("not the leader any more; tick left to the new leader", tick=tick)
        return None

    async def _hand_off(
        self,
        places: RunPlaces,
        holder: str,
        flow: FlowPlan,
        trigger: TriggerPlan,
        tick: int,
        action: str,
        detail: str,
        run: tuple[int, FlowPlan] | None,
    ) -> str | None:
        """`_fire` in a namespace of several partitions: the tick and the run's submission in the control
        slot (step 1), then the run in the partition of its id's hash (step 2; cluster/outbox.py)."""
        local = new_run_id()
        place = places.hashed(local)
        run_id = place.shown(local)
        kept = ""
        if run is not None:
            version, plan = run
            kept = outbox.submission(tick_run_call(place.keys, local, tick, trigger, version, plan))
        call = calls.fire_handoff(
            self.keys, flow.name, trigger.name, tick, holder, TICK_KEY_TTL_MS, action, run_id, kept
        )
        if action == "skip":
            call = call._replace(args=[*call.args[:-1], detail])
        result = str(await self.scripts.run(call))
        if result != "handed":
            if result == "fenced":
                log.warning("not the leader any more; tick left to the new leader", tick=tick)
            return None
        self.fired += 1
        await outbox.deliver(self.redis, self.keys, places, run_id, kept)
        log.info("trigger fired", flow=flow.name, trigger=trigger.name, tick=tick, run=run_id)
        return run_id

    def _run_call(
        self, run_id: str, tick: int, trigger: TriggerPlan, run: tuple[int, FlowPlan]
    ) -> calls.ScriptCall:
        version, flow = run
        return tick_run_call(self.keys.base, run_id, tick, trigger, version, flow)

    async def run(self, stop: asyncio.Event, leader_changed: asyncio.Event) -> None:
        while not stop.is_set():
            sleep = MAX_SLEEP
            if self.holder() is not None:
                try:
                    sleep = await self.once()
                except Exception as err:
                    log.warning("scheduler pass failed", error=repr(err))
            leader_changed.clear()
            await clock.wait((stop, leader_changed), max(sleep, 0.01))  # a moved clock wakes it too
        if self.places is not None:
            await self.places.close()
            self.places = None


def tick_run_call(
    keys: Keys, run_id: str, tick: int, trigger: TriggerPlan, version: int, flow: FlowPlan, **extra: str
) -> calls.ScriptCall:
    """The submit of the run a trigger's tick starts: its params evaluated as of the tick (the scheduler
    fires it; a backfill starts it later with the same fields, plus `extra`)."""
    run_env = run_environment(run_id, tick, keys.partition)
    env = Environment(run=run_env)
    given = {name: evaluate(tree, env) for name, tree in trigger.params.items()}
    values = resolve_params(flow, given, run_env)
    fields = {
        "flow": flow.name,
        "version": str(version),
        "plan_id": flow.id,
        "params": codec.encode(values),
        "trigger": trigger.name,
        "tick": str(tick),
        **extra,
    }
    records = job_records(flow, Environment(params=values, run=run_env))
    return calls.submit_run(keys, now_ms(), run_id, json.dumps(fields), records)
