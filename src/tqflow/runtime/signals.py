"""Signals: the payload a run's signal job (`job approve = signal Approval { timeout 2d }`) waits for.

A signal job runs no task and holds no worker: when it is reached it waits in Redis (state `awaiting`)
until `send_signal` delivers a payload, which becomes its result (`approve.out`), or until its timeout,
when it fails (lua/common.lua, lua/signal.lua, lua/promote.lua). A payload sent before the run reaches the
job is kept with the run and delivered when it does; one payload a job. The payload is checked here
against the type the compiler wrote into the plan (`ValueType`), without importing any Python module.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from tqflow.errors import ClientError, NotFound, RunNotFound
from tqflow.plan import FlowPlan
from tqflow.plan.model import ValueType
from tqflow.runtime.deployments import Deployments
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls, jobrows, payloads, runrows
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

MAX_ERRORS = 5  # problems named in one refusal


class SignalError(ClientError):
    """A signal that was not taken."""


class SignalPayloadError(SignalError, ValueError):
    """The payload does not fit the signal job's type (the API answers 422); the job keeps waiting."""


class SignalNotFound(NotFound):
    """The run's flow has no signal job of this name (the API answers 404)."""


class SignalRefused(SignalError):
    """The job takes no signal now: it received one, timed out, was skipped, or its run ended (409)."""


@dataclass(frozen=True)
class Signalled:
    run_id: str
    name: str
    status: str  # delivered (the job was awaiting it) | kept (delivered when the run reaches the job)


@dataclass(frozen=True)
class WaitingSignal:
    """A signal job that awaits its payload now."""

    run_id: str
    flow: str
    name: str
    type: str
    since_ms: int
    timeout_at_ms: int | None
    schema: dict[str, Any]  # the ValueType, as JSON: what a payload must look like


# -- checking a payload ---------------------------------------------------------------------------


def check_payload(spec: ValueType, value: Any) -> Any:
    """Raise SignalPayloadError naming each place (`payload.comment`) where `value` does not fit."""
    problems: list[str] = []
    _check(spec, value, "payload", problems)
    if problems:
        shown = "; ".join(problems[:MAX_ERRORS])
        more = f" (and {len(problems) - MAX_ERRORS} more)" if len(problems) > MAX_ERRORS else ""
        raise SignalPayloadError(f"the payload does not fit {spec}: {shown}{more}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "an object" if isinstance(value, dict) else type(value).__name__
    )


def _check(spec: ValueType, value: Any, where: str, problems: list[str]) -> None:
    if value is None:
        if not (spec.optional or spec.name in ("None", "Json")):
            problems.append(f"{where} is required (got null)")
        return
    name = spec.name
    checker = _SCALARS.get(name)
    if checker is not None:
        if not checker(value):
            problems.append(f"{where} must be {_WANTED[name]}, got {_kind(value)} {_short(value)}")
        return
    if name == "Json":
        return
    if name == "Literal":
        if not any(type(v) is type(value) and v == value for v in spec.values):
            allowed = ", ".join(json.dumps(v) for v in spec.values)
            problems.append(f"{where} must be one of {allowed}, got {_short(value)}")
        return
    if name == "list":
        if not isinstance(value, list):
            problems.append(f"{where} must be a list, got {_kind(value)}")
            return
        item = spec.args[0] if spec.args else ValueType(name="Json")
        for i, element in enumerate(value):
            _check(item, element, f"{where}[{i}]", problems)
        return
    if not isinstance(value, dict):
        problems.append(f"{where} must be an object ({spec.name}), got {_kind(value)}")
        return
    if name == "dict":
        item = spec.args[1] if len(spec.args) == 2 else ValueType(name="Json")
        for key, element in value.items():
            _check(item, element, f"{where}.{key}", problems)
        return
    if spec.fields is None:  # a class whose fields the compiler could not read: any object
        return
    for field in spec.required:
        if field not in value:
            problems.append(f"{where}.{field} is missing ({spec.fields[field]})")
    for key, element in value.items():
        if key not in spec.fields:
            known = ", ".join(spec.fields) or "none"
            problems.append(f"{where} has no field `{key}` ({spec.name} has: {known})")
        else:
            _check(spec.fields[key], element, f"{where}.{key}", problems)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _iso(parse: Any) -> Any:
    def check(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            parse(value)
        except ValueError:
            return False
        return True

    return check


def _decimal(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if not isinstance(value, str):
        return False
    try:
        decimal.Decimal(value)
    except decimal.InvalidOperation:
        return False
    return True


_SCALARS: dict[str, Any] = {
    "Str": lambda v: isinstance(v, str),
    "Bytes": lambda v: isinstance(v, str),
    "Int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "Decimal": _decimal,
    "Bool": lambda v: isinstance(v, bool),
    "Date": _iso(dt.date.fromisoformat),
    "DateTime": _iso(dt.datetime.fromisoformat),
    "Duration": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "None": lambda v: v is None,
}
_WANTED = {
    "Str": "a string",
    "Bytes": "a string",
    "Int": "an integer",
    "Float": "a number",
    "Decimal": "a number or a numeric string",
    "Bool": "true or false",
    "Date": 'a date like "2026-01-31"',
    "DateTime": 'a date and time like "2026-01-31T09:00:00+01:00"',
    "Duration": "a number of seconds",
    "None": "null",
}


# -- sending and listing --------------------------------------------------------------------------


def signal_jobs(flow: FlowPlan) -> dict[str, ValueType]:
    return {name: job.signal.type for name, job in flow.jobs.items() if job.signal is not None}


async def send_signal(
    redis: Redis,
    keys: Keys,
    scripts: Scripts,
    deployments: Deployments,
    run_id: str,
    name: str,
    payload: Any,
    max_bytes: int = payloads.DEFAULT_MAX_BYTES,
) -> Signalled:
    found = await runrows.flow_version(redis, keys, run_id)
    if found is None:
        raise RunNotFound(f"no run {run_id}")
    _, flow = await deployments.get(*found)  # the run's own version
    jobs = signal_jobs(flow)
    if name not in jobs:
        known = ", ".join(jobs) or "none"
        raise SignalNotFound(
            f"flow {flow.name} (run {run_id}) has no signal job `{name}`; its signal jobs: {known}"
        )
    check_payload(jobs[name], payload)
    text = payloads.encode(payload, payloads.PayloadSettings(max_bytes=max_bytes))  # JSON, as task results
    reply = await scripts.run(calls.signal(keys, now_ms(), run_id, name, text))
    status = str(reply[0])
    if status in ("delivered", "kept"):
        return Signalled(run_id, name, status)
    if status == "missing":
        raise RunNotFound(f"no run {run_id}")
    if status == "not_signal":
        raise SignalNotFound(f"run {run_id} has no signal job `{name}`")
    if status == "ended":
        raise SignalRefused(f"run {run_id} has ended ({reply[1]}); resume it to wait for `{name}` again")
    why = {
        "succeeded": "it received its signal already",
        "kept": "a signal for it was sent already (kept until the run reaches it)",
        "dead": "it timed out (resume the run to wait again)",
        "skipped": "it was skipped",
        "cancelled": "it was cancelled",
    }.get(str(reply[1]), f"it is {reply[1]}")
    raise SignalRefused(f"signal job `{name}` of run {run_id} takes no signal: {why}")


async def waiting_signals(
    redis: Redis, keys: Keys, deployments: Deployments, run_id: str | None = None, limit: int = 100
) -> list[WaitingSignal]:
    """Signal jobs that await their payload now, oldest first (those of one run with `run_id`)."""
    rows: list[tuple[str, float]] = []
    if run_id is None:
        ranked: list[Any] = await redis.zrange(keys.awaiting, 0, limit - 1, withscores=True)
        rows = [(str(member), float(score)) for member, score in ranked]
    else:
        async for member, score in redis.zscan_iter(keys.awaiting, match=f"{run_id}.*"):
            rows.append((str(member), float(score)))
        rows.sort(key=lambda r: r[1])
    out: list[WaitingSignal] = []
    plans: dict[tuple[str, int], FlowPlan | None] = {}
    for job_id, since in rows:
        row = await jobrows.signal_job(redis, keys, str(job_id))
        run, name, flow_name, due = row.run, row.name, row.flow, row.due
        if row.state != "awaiting" or run is None or name is None:
            continue
        version = await runrows.version(redis, keys, str(run))
        spec = await _spec(deployments, plans, str(flow_name), version, str(name))
        out.append(
            WaitingSignal(
                run_id=str(run),
                flow=str(flow_name),
                name=str(name),
                type=str(spec) if spec else "",
                since_ms=int(since),
                timeout_at_ms=due,
                schema=spec.model_dump(mode="json", exclude_defaults=True) if spec else {},
            )
        )
    return out


async def _spec(
    deployments: Deployments,
    plans: dict[tuple[str, int], FlowPlan | None],
    flow: str,
    version: int,
    name: str,
) -> ValueType | None:
    if (flow, version) not in plans:
        try:
            plans[(flow, version)] = (await deployments.get(flow, version))[1]
        except LookupError:  # undeployed since: the payload's type is still in no plan we can read
            plans[(flow, version)] = None
    plan = plans[(flow, version)]
    return signal_jobs(plan).get(name) if plan is not None else None
