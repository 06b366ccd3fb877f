"""Event triggers: `schedule event "order.paid" { params { order = event.id }; key event.id within 1h }`
starts a run of the flow for each event of that name sent with `emit` (`tqc emit`, `POST /api/events/{name}`,
`Client.emit`). The event's data is `event` in the trigger's expressions. With a `key`, events whose key
was seen by that trigger within the window start no second run: the run the first one started is returned
(`duplicate`), decided in the same script that creates the run (lua/event_fence.lua + submit_run.lua).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from tqflow.errors import ClientError
from tqflow.plan import FlowPlan, TriggerPlan
from tqflow.runtime.deployments import Deployments, FlowNotDeployed
from tqflow.runtime.expressions import Environment, ExpressionError, evaluate
from tqflow.runtime.params import ParamError, resolve_params
from tqflow.runtime.partitions import RunPlaces
from tqflow.runtime.runs import job_records, new_run_id, now_ms, run_environment
from tqflow.runtime.store import calls, codec
from tqflow.runtime.store.keys import Keys

EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # the language checks the same (compiler/schedules.py)
DEFAULT_KEY_WINDOW_MS = 24 * 3_600_000


class EventError(ClientError, ValueError):
    """An event that cannot start a run: a bad name, or data its trigger cannot read (the API: 422)."""


@dataclass(frozen=True)
class EventRun:
    flow: str
    trigger: str
    run_id: str  # the run started, or (duplicate) the run the key's first event started; "" when paused
    status: str  # started | duplicate | paused


def check_event_name(name: str) -> str:
    if not isinstance(name, str) or not EVENT_NAME.match(name):
        raise EventError(
            f"event name {str(name)[:60]!r} must be 1-128 characters of letters, digits, '_', '.', ':' or '-'"
        )
    return name


def listening(flow: FlowPlan, name: str) -> list[TriggerPlan]:
    return [t for t in flow.triggers if t.kind == "event" and t.event == name]


def _key_text(value: Any) -> str:
    """A key value as stable text: strings as they are, anything else as canonical JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


async def emit(
    redis: Redis, keys: Keys, deployments: Deployments, name: str, data: Any, places: RunPlaces
) -> list[EventRun]:
    """Start a run of every deployed flow whose event trigger listens for `name` (paused flows start none).
    Every listening trigger's params and key are evaluated before any run starts, so data one of them
    cannot read starts nothing (EventError). In a namespace of several partitions a keyed trigger's run
    goes to the partition of its key's hash, where the key's marker is kept beside the run (one script,
    as with one partition); a run without a key to the next partition."""
    check_event_name(name)
    planned: list[tuple[str, int, FlowPlan, TriggerPlan, bool]] = []
    for flow_name in await deployments.listeners(name):  # the index by event name (deployments.py)
        try:
            version, flow = await deployments.get(flow_name)
        except FlowNotDeployed:  # undeployed: listens no more
            continue
        triggers = listening(flow, name)
        if triggers:
            paused = bool(await redis.hexists(keys.flow(flow_name), "paused"))
            planned.extend((flow_name, version, flow, t, paused) for t in triggers)
    calls_to_make = []
    results: list[EventRun] = []
    for flow_name, version, flow, trigger, paused in planned:
        if paused:
            results.append(EventRun(flow_name, trigger.name, "", "paused"))
            continue
        run_id, created = new_run_id(), now_ms()
        where = f"flow {flow_name}, schedule {trigger.name}"
        try:
            # the key picks the run's partition, so it is read before `run.id` (which names the partition)
            # is known: a key sees the run's id in its partition, never a useful part of a key anyway
            early = Environment(run=run_environment(run_id, created), variables={"event": data})
            key = _key_text(evaluate(trigger.key, early)) if trigger.key is not None else None
            digest = hashlib.sha256(key.encode()).hexdigest()[:32] if key is not None else None
            place = places.pick() if digest is None else places.hashed(f"{flow_name}:{trigger.name}:{digest}")
            run_env = run_environment(run_id, created, place.keys.partition)
            env = Environment(run=run_env, variables={"event": data})
            given = {param: evaluate(tree, env) for param, tree in trigger.params.items()}
            values = resolve_params(flow, given, run_env)
            # its jobs' limit and fair keys (`by params.x`) read the run's params, as a run started by name
            jobs = job_records(flow, Environment(params=values, run=run_env))
        except (ExpressionError, ParamError) as err:
            raise EventError(f"event {name} cannot start a run of {where}: {err}") from err
        fields = {
            "flow": flow.name,
            "version": str(version),
            "plan_id": flow.id,
            "params": codec.encode(values),
            "trigger": trigger.name,
            "event": name,
        }
        submit = calls.submit_run(place.keys, created, run_id, json.dumps(fields), jobs)
        if digest is not None:
            window = trigger.key_within_ms or DEFAULT_KEY_WINDOW_MS
            submit = calls.event_run(submit, place.keys.event_key(flow_name, trigger.name, digest), window)
        calls_to_make.append((flow_name, trigger.name, run_id, submit, place))
    for flow_name, trigger_name, run_id, submit, place in calls_to_make:
        reply = await place.scripts.run(submit)
        if isinstance(reply, str) and reply.startswith("duplicate:"):
            first = place.shown(reply.removeprefix("duplicate:"))
            results.append(EventRun(flow_name, trigger_name, first, "duplicate"))
        else:
            results.append(EventRun(flow_name, trigger_name, place.shown(run_id), "started"))
    return results
