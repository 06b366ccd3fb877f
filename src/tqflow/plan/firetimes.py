"""When a trigger fires: the next fire times of a schedule in its zone, honouring its DST policy.

Cron expressions are read in the schedule's local wall-clock time (croniter on naive times), then each
local time is placed on the timeline: a time that does not exist that day (the spring-forward gap) is
skipped or shifted forward by the gap; a time that occurs twice (the autumn repeat) fires once (the
first occurrence) or twice. `every D` fires at whole multiples of D since 1970-01-01T00:00Z.
The runtime's scheduler can use `next_fire_times` so that `tqc next` and real runs agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from croniter import croniter

from tqflow.plan.model import TriggerPlan

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def next_fire_times(trigger: TriggerPlan, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next `count` fire times strictly after `after` (aware), as aware times in the trigger's zone."""
    zone = ZoneInfo(trigger.timezone)
    after = after.astimezone(UTC)
    if trigger.kind == "at":
        at = dt.datetime.fromisoformat(trigger.at or "")
        return [at.astimezone(zone)] if at > after and count > 0 else []
    if trigger.kind == "every":
        step = dt.timedelta(milliseconds=trigger.every_ms or 1)
        first = (after - EPOCH) // step + 1
        return [(EPOCH + step * (first + i)).astimezone(zone) for i in range(count)]
    times: list[dt.datetime] = []
    for local in _cron_local_times(trigger.cron or "", after.astimezone(zone).replace(tzinfo=None)):
        for instant in place(local, zone, trigger.on_dst_gap, trigger.on_dst_repeat):
            # Compare in UTC: two times of one zone compare by wall clock, ignoring `fold`.
            if instant > after and (not times or instant.astimezone(UTC) > times[-1].astimezone(UTC)):
                times.append(instant)
        if len(times) >= count:
            return times[:count]
    return times  # pragma: no cover - croniter is endless


def _cron_local_times(cron: str, start: dt.datetime) -> Iterator[dt.datetime]:
    # Start an hour early so that a repeated hour's second occurrence is not missed.
    it = croniter(cron, start - dt.timedelta(hours=3))
    while True:
        yield it.get_next(dt.datetime)


def place(local: dt.datetime, zone: ZoneInfo, on_gap: str, on_repeat: str) -> list[dt.datetime]:
    """The instants a local wall-clock time stands for in `zone`, under the DST policies."""
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    if not exists(local, zone):
        return [first.astimezone(UTC).astimezone(zone)] if on_gap == "shift" else []
    if first.utcoffset() != second.utcoffset():
        return [first, second.astimezone(UTC).astimezone(zone)] if on_repeat == "both" else [first]
    return [first]


def exists(local: dt.datetime, zone: ZoneInfo) -> bool:
    aware = local.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local


@dataclass(frozen=True)
class DstHit:
    kind: str  # "gap" | "repeat"
    local: dt.datetime  # a scheduled local time inside it
    start: dt.datetime  # the local range that does not exist / occurs twice
    end: dt.datetime


def dst_hits(cron: str, zone: ZoneInfo, year: int) -> list[DstHit]:
    """Scheduled local times of `year` that fall in a DST gap or repeat (one hit per transition)."""
    hits = []
    for start, end, kind in _transitions(zone, year):
        minute = start
        while minute < end:
            if croniter.match(cron, minute):
                hits.append(DstHit(kind, minute, start, end))
                break
            minute += dt.timedelta(minutes=1)
    return hits


def _transitions(zone: ZoneInfo, year: int) -> list[tuple[dt.datetime, dt.datetime, str]]:
    """(local start, local end, kind) of each offset change in `year`."""
    result = []
    day = dt.datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        nxt = day + dt.timedelta(days=1)
        before, after = day.astimezone(zone).utcoffset(), nxt.astimezone(zone).utcoffset()
        if before != after and before is not None and after is not None:
            instant = _bisect(zone, day, nxt)
            local = instant.astimezone(zone).replace(tzinfo=None)
            delta = after - before
            if delta > dt.timedelta(0):  # clocks go forward: [local, local + delta) does not exist
                result.append((local - delta, local, "gap"))
            else:  # clocks go back: [local, local - delta) occurs twice
                result.append((local, local - delta, "repeat"))
        day = nxt
    return result


def _bisect(zone: ZoneInfo, low: dt.datetime, high: dt.datetime) -> dt.datetime:
    """The first instant in (low, high] with high's offset (to the minute)."""
    target = high.astimezone(zone).utcoffset()
    while high - low > dt.timedelta(minutes=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).utcoffset() == target:
            high = mid
        else:
            low = mid
    return high.replace(second=0, microsecond=0)
