"""Deployed flows: each flow's plans stored as numbered versions, the current one marked.

A deploy makes a new version current and remembers the order of deploys (`history`), so a rollback
returns to the version that was current before. Runs keep the version they started with (the run
records it and its jobs carry their definitions), so a deploy never changes a run in progress; the
scheduler and new runs read the current version each time, so workers need no restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from tqflow.errors import NotFound
from tqflow.plan import FlowPlan, Plan, TriggerPlan
from tqflow.plan.durations import format_duration
from tqflow.plan.model import LimiterPlan
from tqflow.runtime.cluster.schedule import ScheduleError, next_ticks
from tqflow.runtime.flow_controls import check_flow
from tqflow.runtime.limits import check_consistent
from tqflow.runtime.store.keys import Keys


@dataclass(frozen=True)
class Deployed:
    flow: str
    version: int
    plan_id: str
    changed: bool  # False when the same plan was already the current version


def events_of(flow: FlowPlan) -> list[str]:
    """The event names a flow's triggers listen for."""
    return sorted({t.event for t in flow.triggers if t.kind == "event" and t.event})


class FlowNotDeployed(NotFound):
    """No version of this flow is deployed (or not the version asked for)."""


JOB_FIELDS = (
    "task",
    "args",
    "queue",
    "priority",
    "retry",
    "timeout_ms",
    "deadline_ms",
    "delay_ms",
    "when",
    "after",
    "fan_out",
    "unique",
    "dead_letter",
    "signal",
    "subflow",
    "limits",
    "fair",
)


@dataclass
class FlowDiff:
    """What a deploy changes in one flow, against its current version (None: a new flow)."""

    flow: str
    current: int | None
    unchanged: bool = False
    jobs_added: list[str] = field(default_factory=list)
    jobs_removed: list[str] = field(default_factory=list)
    edges_added: list[tuple[str, str]] = field(default_factory=list)
    edges_removed: list[tuple[str, str]] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # job (or "flow") -> "field: old -> new"
    triggers_before: dict[str, list[int]] = field(default_factory=dict)  # trigger -> next fire times (ms)
    triggers_after: dict[str, list[int]] = field(default_factory=dict)


def _short(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _limiter(plan: LimiterPlan | None) -> str:
    """A limiter as the language writes it (`rate(10/1s, burst=20)`), or `none`."""
    if plan is None:
        return "none"
    if plan.kind == "concurrency":
        return f"concurrency({plan.limit})"
    burst = f", burst={plan.burst}" if plan.burst is not None else ""
    return f"rate({plan.rate}/{format_duration(plan.period_ms)}{burst})"


def _edges(flow: FlowPlan) -> set[tuple[str, str]]:
    return {(up, name) for name, job in flow.jobs.items() for up in job.waits_for}


def trigger_label(trigger: TriggerPlan) -> str:
    if trigger.kind == "cron":
        return f'{trigger.name} (cron "{trigger.cron}" tz {trigger.timezone})'
    if trigger.kind == "every":
        return f"{trigger.name} (every {trigger.every_ms} ms)"
    if trigger.kind == "event":
        return f'{trigger.name} (event "{trigger.event}")'
    return f"{trigger.name} (at {trigger.at})"


def _next_fires(triggers: list[TriggerPlan], now_ms: int) -> dict[str, list[int]]:
    result = {}
    for trigger in triggers:
        try:
            result[trigger_label(trigger)] = next_ticks(trigger, now_ms, 3)
        except ScheduleError:
            result[trigger_label(trigger)] = []
    return result


def diff_flows(old: FlowPlan | None, new: FlowPlan, current: int | None, now_ms: int) -> FlowDiff:
    diff = FlowDiff(new.name, current, unchanged=old is not None and old.id == new.id)
    old_jobs = old.jobs if old else {}
    diff.jobs_added = sorted(set(new.jobs) - set(old_jobs))
    diff.jobs_removed = sorted(set(old_jobs) - set(new.jobs))
    old_edges = _edges(old) if old else set()
    diff.edges_added = sorted(_edges(new) - old_edges)
    diff.edges_removed = sorted(old_edges - _edges(new))
    for name in sorted(set(new.jobs) & set(old_jobs)):
        before, after = old_jobs[name].model_dump(mode="json"), new.jobs[name].model_dump(mode="json")
        changes = [
            f"{f}: {_short(before[f])} -> {_short(after[f])}" for f in JOB_FIELDS if before[f] != after[f]
        ]
        if changes:
            diff.changed[name] = changes
    if old is not None:
        flow_changes = [
            f"{f}: {_short(getattr(old, f))} -> {_short(getattr(new, f))}"
            for f in ("queue", "params", "outputs", "triggers")
            if getattr(old, f) != getattr(new, f)
        ]
        flow_changes = [c if not c.startswith("triggers") else "triggers changed" for c in flow_changes]
        for name in sorted(set(old.limiters) | set(new.limiters)):
            was, now = old.limiters.get(name), new.limiters.get(name)
            if was != now:
                flow_changes.append(f"limiter {name}: {_limiter(was)} -> {_limiter(now)}")
        if flow_changes:
            diff.changed["(flow)"] = flow_changes
    diff.triggers_before = _next_fires(old.triggers, now_ms) if old else {}
    diff.triggers_after = _next_fires(new.triggers, now_ms)
    return diff


class Deployments:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        # plan id -> the flow plan this client deployed or read with that id (frozen, and a version's text
        # never changes under its id): `get` reads the version's id and parses its text only when new (a
        # 1,000-job flow's text is ~25-60 ms to validate)
        self._plans: dict[str, FlowPlan] = {}

    def _keep(self, plan_id: str, flow: FlowPlan) -> None:
        if len(self._plans) >= 32:
            self._plans.pop(next(iter(self._plans)))
        self._plans[plan_id] = flow

    async def deploy(self, plan: Plan) -> list[Deployed]:
        """LimiterConflict (nothing deployed) when the plan's flows define one limiter name differently."""
        for flow in plan.flows.values():
            check_flow(flow)
        check_consistent(
            (lim for flow in plan.flows.values() for lim in flow.limiters.values()), " in the plan"
        )
        return [await self.deploy_flow(flow) for flow in plan.flows.values()]

    async def preview(self, plan: Plan, now_ms: int) -> list[FlowDiff]:
        """What `deploy(plan)` would change, flow by flow."""
        diffs = []
        for flow in plan.flows.values():
            try:
                version, current = await self.get(flow.name)
                diffs.append(diff_flows(current, flow, version, now_ms))
            except FlowNotDeployed:
                diffs.append(diff_flows(None, flow, None, now_ms))
        return diffs

    async def deploy_flow(self, flow: FlowPlan) -> Deployed:
        key = self.keys.flow(flow.name)
        plan_id = flow.id
        current = await self._get(key, "current")
        if current is not None and await self._get(key, f"id:{current}") == plan_id:
            self._keep(plan_id, flow)
            return Deployed(flow.name, int(current), plan_id, changed=False)
        version = await self.redis.hincrby(key, "latest", 1)
        history = await self.history(flow.name)
        indexed = json.loads(await self._get(key, "events") or "[]")
        first = not await self.redis.exists(self.keys.flows)  # nothing deployed yet: the index is whole
        async with self.redis.pipeline(transaction=True) as pipe:
            self._index(pipe, flow.name, indexed, events_of(flow))
            if first:
                pipe.set(self.keys.events_indexed, "1")
            pipe.hset(
                key,
                mapping={
                    f"v:{version}": flow.canonical_json(),
                    f"id:{version}": plan_id,
                    "current": version,
                    "history": json.dumps([*history, version]),
                },
            )
            pipe.sadd(self.keys.flows, flow.name)
            await pipe.execute()
        self._keep(plan_id, flow)
        return Deployed(flow.name, version, plan_id, changed=True)

    async def history(self, name: str) -> list[int]:
        """The versions made current by deploys, oldest first (rollbacks remove the latest)."""
        key = self.keys.flow(name)
        raw = await self._get(key, "history")
        if raw is not None:
            return [int(v) for v in json.loads(raw)]
        current = await self._get(key, "current")  # deployed before history was kept
        return list(range(1, int(current) + 1)) if current else []

    async def rollback(self, name: str) -> Deployed:
        """Make the version that was current before the latest deploy current again."""
        history = await self.history(name)
        if not history:
            raise FlowNotDeployed(f"flow `{name}` is not deployed")
        if len(history) < 2:
            raise FlowNotDeployed(f"flow `{name}` has no earlier version to roll back to")
        previous = history[-2]
        key = self.keys.flow(name)
        _version, plan = await self.get(name, previous)
        indexed = json.loads(await self._get(key, "events") or "[]")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"current": previous, "history": json.dumps(history[:-1])})
            self._index(pipe, name, indexed, events_of(plan))
            await pipe.execute()
        return Deployed(name, previous, str(await self._get(key, f"id:{previous}")), changed=True)

    async def get(self, name: str, version: int | None = None) -> tuple[int, FlowPlan]:
        key = self.keys.flow(name)
        if version is None:
            current = await self.redis.hget(key, "current")
            if current is None:
                raise FlowNotDeployed(f"flow `{name}` is not deployed (run `tqc deploy FILE` first)")
            version = int(current)
        plan_id = await self._get(key, f"id:{version}")
        known = self._plans.get(plan_id) if plan_id is not None else None
        if known is not None:
            return version, known
        text = await self.redis.hget(key, f"v:{version}")
        if text is None:
            raise FlowNotDeployed(f"flow `{name}` has no version {version}")
        flow = FlowPlan.model_validate_json(text)
        if plan_id is not None:
            self._keep(plan_id, flow)
        return version, flow

    async def names(self) -> list[str]:
        return sorted(str(n) for n in await self.redis.smembers(self.keys.flows))

    async def listeners(self, event: str) -> list[str]:
        """The deployed flows whose current version listens for `event`, from the index by event name (a
        hint: `emit` still reads each one's trigger). Flows deployed before the index existed are indexed
        on the first call."""
        if not await self.redis.exists(self.keys.events_indexed):
            await self._index_deployed()
        return sorted(str(n) for n in await self.redis.smembers(self.keys.event_listeners(event)))

    async def _index_deployed(self) -> None:
        for name in await self.names():
            try:
                _version, flow = await self.get(name)
            except FlowNotDeployed:
                continue
            key = self.keys.flow(name)
            indexed = json.loads(await self._get(key, "events") or "[]")
            async with self.redis.pipeline(transaction=True) as pipe:
                self._index(pipe, name, indexed, events_of(flow))
                await pipe.execute()
        await self.redis.set(self.keys.events_indexed, "1")

    def _index(self, pipe: Any, name: str, before: list[str], after: list[str]) -> None:
        """Queue on `pipe` the index changes of flow `name` moving from events `before` to `after`."""
        for event in sorted(set(before) - set(after)):
            pipe.srem(self.keys.event_listeners(event), name)
        for event in after:
            pipe.sadd(self.keys.event_listeners(event), name)
        pipe.hset(self.keys.flow(name), "events", json.dumps(after))

    def unindex(self, pipe: Any, name: str, indexed: list[str]) -> None:
        """Queue on `pipe` the removal of flow `name` (undeployed) from the index."""
        for event in indexed:
            pipe.srem(self.keys.event_listeners(event), name)
        pipe.hdel(self.keys.flow(name), "events")

    async def _get(self, key: str, field: str) -> str | None:
        value = await self.redis.hget(key, field)
        return None if value is None else str(value)
