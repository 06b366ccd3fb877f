"""Schedules from Python: `client.schedule(task, cron=…, tz=…, args=…)`, what Celery beat entries and
BullMQ repeatable jobs are, stored and fired exactly as a flow's schedule.

A schedule is deployed as a flow of one job named `schedule.NAME` with one trigger (`tick`): the leader's
scheduler (runtime/cluster/scheduler.py) fires it as any flow's trigger: each tick once (a failover
included), the same cron with seconds, IANA time zones and DST policies (`on_dst_gap`, `on_dst_repeat`),
catch-up of missed ticks and overlap. Each tick starts a run of that flow whose one job (`RUN.job`) runs
the task with the schedule's arguments. Scheduling the same name again deploys a new version and keeps
the trigger's last tick, so nothing fires twice; removing it undeploys the flow and forgets its ticks.
Being a flow, `tqc pause|unpause schedule.NAME`, `tqc runs --flow schedule.NAME` and the dashboard work
on it too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tqflow.errors import ClientError, UsageError, UsageTypeError
from tqflow.plan import DEFAULT_PRIORITY, DEFAULT_QUEUE, CatchupPlan, FlowPlan, JobPlan, Priority, TriggerPlan
from tqflow.plan.durations import Duration, to_ms
from tqflow.plan.firetimes import parse_cron
from tqflow.plan.model import RetryPlan, TaskRef
from tqflow.runtime.catalog import Published
from tqflow.runtime.cluster.schedule import ScheduleError, at_ms, next_ticks, zone
from tqflow.runtime.store import codec
from tqflow.runtime.store.keys import check_part
from tqflow.runtime.task import Call, Task
from tqflow.runtime.validation import validator

PREFIX = "schedule."
JOB = "job"
TRIGGER = "tick"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
CATCHUP_RE = re.compile(r"^(none|all|last\((\d+)\)|all\(within=([0-9a-z ]+)\))$")


class ScheduleNotFound(ClientError, LookupError):
    """No schedule of that name."""


@dataclass(frozen=True)
class Schedule:
    """A schedule as it is deployed, with when it fires next and what it fired last."""

    name: str
    task: str
    kind: str  # cron, every or at
    cron: str | None
    timezone: str
    every_ms: int | None
    at: str | None
    args: dict[str, Any]
    queue: str
    priority: str
    catchup: str  # none, all, last(N), all(within=…)
    overlap: str  # skip, queue or allow
    on_dst_gap: str
    on_dst_repeat: str
    version: int
    paused: bool = False
    next_ms: int | None = None
    last_fired_ms: int | None = None  # the latest tick that started a run
    last_run: str | None = None  # … and that run
    fired: int = 0  # ticks that started a run
    skipped: int = 0  # ticks skipped (missed and not caught up, or overlapping a run still going)
    flow: str = field(default="")


def flow_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(
            f"schedule name {name!r} must be 1-100 characters of letters, digits, '_', '.' or '-'"
        )
    return PREFIX + name


def catchup_plan(value: str | CatchupPlan) -> CatchupPlan:
    """`none`, `all`, `last(N)` or `all(within=DURATION)`, as the language writes them."""
    if isinstance(value, CatchupPlan):
        return value
    found = CATCHUP_RE.match(str(value).strip())
    if not found:
        raise UsageError(f"catchup {value!r} must be none, all, last(N) or all(within=DURATION)")
    if found[2] is not None:
        return CatchupPlan(kind="last", count=int(found[2]))
    if found[3] is not None:
        return CatchupPlan(kind="all", within_ms=to_ms(found[3].replace(" ", ""), "catchup within"))
    return CatchupPlan(kind="all" if found[1] == "all" else "none")


def catchup_text(plan: CatchupPlan) -> str:
    if plan.kind == "last":
        return f"last({plan.count})"
    if plan.kind == "all" and plan.within_ms:
        return f"all(within={plan.within_ms}ms)"
    return plan.kind


def trigger_plan(
    *,
    cron: str | None,
    every: Duration | None,
    at: str | None,
    tz: str,
    catchup: str | CatchupPlan,
    overlap: str,
    on_dst_gap: str,
    on_dst_repeat: str,
) -> TriggerPlan:
    """The trigger, checked: one of cron, every or at; a known time zone; a cron that parses and fires."""
    given = [k for k, v in (("cron", cron), ("every", every), ("at", at)) if v is not None]
    if len(given) != 1:
        raise UsageError(
            f"a schedule needs exactly one of cron, every or at (got {', '.join(given) or 'none'})"
        )
    zone(tz)  # ScheduleError naming the zone
    for what, value, allowed in (
        ("overlap", overlap, ("skip", "queue", "allow")),
        ("on_dst_gap", on_dst_gap, ("skip", "shift")),
        ("on_dst_repeat", on_dst_repeat, ("first", "both")),
    ):
        if value not in allowed:
            raise UsageError(f"{what} {value!r} is not one of {', '.join(allowed)}")
    kind = given[0]
    every_ms = to_ms(every, "every") if every is not None else None
    if every_ms is not None and every_ms <= 0:
        raise UsageError(f"a schedule's `every` must be longer than 0, got {every!r}")
    trigger = TriggerPlan.model_validate(
        {
            "name": TRIGGER,
            "kind": kind,
            "cron": cron,
            "timezone": tz,
            "every_ms": every_ms,
            "at": at,
            "catchup": catchup_plan(catchup),
            "overlap": overlap,
            "on_dst_gap": on_dst_gap,
            "on_dst_repeat": on_dst_repeat,
        }
    )
    if kind == "at":
        at_ms(trigger)
    else:
        next_ticks(trigger, 0, 1)  # ScheduleError for a cron that does not parse
    if cron is not None and not parse_cron(cron).can_fire():  # as the language's TQ0601
        raise ScheduleError(
            f"cron {cron!r} can never fire: no date has that day of month in those months "
            "(February has at most 29 days; April, June, September and November have 30)"
        )
    return trigger


def schedule_flow(
    name: str,
    target: Task[Any, Any] | Call[Any] | str,
    args: Mapping[str, Any],
    trigger: TriggerPlan,
    published: Published | None,
    *,
    queue: str | None = None,
    priority: str | None = None,
    retry: RetryPlan | None = None,
    timeout: Duration | None = None,
    deadline: Duration | None = None,
    dead_letter: str | None = None,
) -> FlowPlan:
    """The one-job flow a schedule is deployed as. Its arguments are checked against the task now (a
    Task's signature, or what its workers published) and stored as JSON values."""
    task: Task[Any, Any] | None = None
    if isinstance(target, Call):
        task, args = target.task, {**target.kwargs, **args}
    elif isinstance(target, Task):
        task = target
    elif not isinstance(target, str):
        raise UsageTypeError(f"expected a task, a task name or task.call(...), got {type(target).__name__}")
    task_name = task.name if task is not None else check_part("task name", target)  # type: ignore[arg-type]
    if task is not None:
        validator(task).validate(dict(args))
    elif published is not None:
        published.validate(args)
    try:
        values = json.loads(codec.encode(dict(args)))  # dates, decimals, models: JSON values, as a payload
    except TypeError as err:
        raise UsageTypeError(f"schedule {name!r}: an argument cannot be stored: {err}") from err
    own = task.options if task is not None else published
    module, _, function = task_name.rpartition(".")
    signature = str(task.signature) if task is not None else json.dumps(published.params if published else [])
    level = Priority.parse(priority or (own.priority if own else None) or DEFAULT_PRIORITY)
    job = JobPlan(
        name=JOB,
        task=TaskRef(
            name=task_name,
            module=module,
            function=function or task_name,
            signature_hash=hashlib.sha256(f"{task_name}{signature}".encode()).hexdigest()[:16],
        ),
        args={key: {"lit": value} for key, value in values.items()},
        queue=check_part("queue name", queue or (own.queue if own else None) or DEFAULT_QUEUE),
        priority=level.label,
        retry=retry or RetryPlan(),  # none given: the worker applies the task's own
        timeout_ms=to_ms(timeout, "timeout") if timeout is not None else None,
        deadline_ms=to_ms(deadline, "deadline") if deadline is not None else None,
        dead_letter=check_part("dead-letter queue name", dead_letter) if dead_letter else None,
    )
    return FlowPlan(
        name=flow_name(name),
        queue=job.queue,
        jobs={JOB: job},
        order=[JOB],
        triggers=[trigger],
        modules=[module] if module else [],
    )


def describe(
    name: str,
    version: int,
    flow: FlowPlan,
    paused: bool,
    trigger_state: Mapping[str, Any],
    now: int,
) -> Schedule:
    """A deployed schedule flow as a Schedule (`trigger_state`: its trigger's hash in Redis)."""
    job = flow.jobs[JOB]
    trigger = flow.triggers[0]
    try:
        upcoming = next_ticks(trigger, now, 1)
    except ScheduleError:
        upcoming = []
    last = trigger_state.get("last_fired")
    return Schedule(
        name=name,
        task=job.task.name,
        kind=trigger.kind,
        cron=trigger.cron,
        timezone=trigger.timezone,
        every_ms=trigger.every_ms,
        at=trigger.at,
        args={key: tree.get("lit") for key, tree in job.args.items()},
        queue=job.queue,
        priority=job.priority,
        catchup=catchup_text(trigger.catchup),
        overlap=trigger.overlap,
        on_dst_gap=trigger.on_dst_gap,
        on_dst_repeat=trigger.on_dst_repeat,
        version=version,
        paused=paused,
        next_ms=None if paused or not upcoming else upcoming[0],
        last_fired_ms=int(last) if last not in (None, "") else None,
        last_run=str(trigger_state["run"]) if trigger_state.get("run") else None,
        fired=int(trigger_state.get("fired") or 0),
        skipped=int(trigger_state.get("skipped") or 0),
        flow=flow.name,
    )
