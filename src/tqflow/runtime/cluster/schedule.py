"""When triggers fire: cron in an IANA time zone with DST policies, `every`, `at`; and which due ticks
fire or are skipped under a trigger's catch-up policy. Pure functions over epoch milliseconds.

Cron has five fields, or six with seconds FIRST (`*/5 * * * * *` = every five seconds), as in Quartz
and BullMQ. It is evaluated on local wall-clock time; a local time that does not exist on a DST day
(spring forward) is skipped or shifted forward by the gap (`on_dst_gap`), and one that occurs twice
(fall back) fires at its first occurrence or at both (`on_dst_repeat`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tqflow.errors import PlanError
from tqflow.plan import TriggerPlan
from tqflow.plan.firetimes import CronError, cron_fire_times, parse_cron

DAY_MS = 86_400_000


class ScheduleError(PlanError, ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ScheduleError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Paris')") from err


def _cron_ticks(trigger: TriggerPlan, after_ms: int) -> Iterator[int]:
    """The plan's own fire times (`tqflow.plan.firetimes`), so `tqc next` and the scheduler agree."""
    tz = zone(trigger.timezone)
    try:
        cron = parse_cron(trigger.cron or "")
    except CronError as err:
        raise ScheduleError(f"invalid cron expression {trigger.cron!r}: {err}") from err
    after = dt.datetime.fromtimestamp(after_ms / 1000, dt.UTC)
    for instant in cron_fire_times(cron, tz, after, trigger.on_dst_gap, trigger.on_dst_repeat):
        yield round(instant.timestamp() * 1000)


def ticks(trigger: TriggerPlan, after_ms: int) -> Iterator[int]:
    """Every tick strictly after `after_ms`, in order (endless for cron and every)."""
    if trigger.kind == "cron":
        yield from _cron_ticks(trigger, after_ms)
    elif trigger.kind == "every":
        step = trigger.every_ms or 0
        if step <= 0:
            raise ScheduleError(f"trigger {trigger.name}: `every` needs a positive interval")
        tick = (after_ms // step + 1) * step  # aligned to the epoch, so every leader agrees
        while True:
            yield tick
            tick += step
    elif trigger.kind == "event":
        return  # an event trigger has no ticks: each event starts its run (runtime/events.py)
    else:
        at = at_ms(trigger)
        if at > after_ms:
            yield at


def at_ms(trigger: TriggerPlan) -> int:
    try:
        moment = dt.datetime.fromisoformat(str(trigger.at))
    except ValueError as err:
        raise ScheduleError(f"trigger {trigger.name}: {trigger.at!r} is not an ISO 8601 time") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(trigger.timezone))
    return int(moment.timestamp() * 1000)


def due_ticks(trigger: TriggerPlan, after_ms: int, until_ms: int, limit: int = 10_000) -> list[int]:
    """Ticks in (after, until], at most `limit` of the LATEST ones (older ones are counted by caller)."""
    found: list[int] = []
    for tick in ticks(trigger, after_ms):
        if tick > until_ms:
            break
        found.append(tick)
        if len(found) > limit:
            found.pop(0)
    return found


def next_ticks(trigger: TriggerPlan, after_ms: int, count: int) -> list[int]:
    result: list[int] = []
    if count <= 0:
        return result
    for tick in ticks(trigger, after_ms):
        result.append(tick)
        if len(result) >= count:
            break
    return result


@dataclass(frozen=True)
class TickPlan:
    fire: list[int]  # ticks to fire, oldest first
    skipped: int  # ticks missed and not caught up (recorded, never silently dropped)
    skip_upto: int  # the latest skipped tick (0: none)


def plan_ticks(trigger: TriggerPlan, last_ms: int, now_ms: int, grace_ms: int) -> TickPlan:
    """Which of the ticks due since `last_ms` fire now: those on time (within `grace_ms`), plus the
    missed ones the catch-up policy keeps: none, the last N, or all within a bound."""
    due = due_ticks(trigger, last_ms, now_ms)
    on_time = [t for t in due if now_ms - t <= grace_ms]
    missed = [t for t in due if now_ms - t > grace_ms]
    catchup = trigger.catchup
    if catchup.kind == "last":
        keep = missed[-catchup.count :] if catchup.count > 0 else []
    elif catchup.kind == "all":
        bound = catchup.within_ms if catchup.within_ms is not None else DAY_MS
        keep = [t for t in missed if now_ms - t <= bound]
    else:
        keep = []
    dropped = [t for t in missed if t not in set(keep)]
    return TickPlan(fire=keep + on_time, skipped=len(dropped), skip_upto=max(dropped, default=0))
