"""When a trigger fires: the next fire times of a schedule in its zone, honouring its DST policy.

A cron expression names local wall-clock times of the schedule's zone (five fields, or six with seconds
first as in Quartz and BullMQ). Each matching local time is placed on the timeline:
- a time that occurs once fires at that instant;
- a time that does not exist that day (the spring-forward gap) is skipped (`on_dst_gap skip`) or fires at
  the instant it would have had with the offset before the change, which the clock shows later by the
  gap (`shift`: 02:30 in a one-hour gap runs at 03:30);
- a time that occurs twice (the autumn repeat) fires at its first occurrence (`on_dst_repeat first`) or
  at both (`both`).
The fire times are the SORTED set of all these instants (two local times that land on one instant fire
once). A shifted time can land after real times that follow the gap (in Lord Howe's 30-minute gap,
`*/7` shifts 02:28 to 02:58, after 02:35 … 02:56): every one of them fires, in time order.

Days follow Vixie cron: when the day-of-month or the day-of-week field starts with `*`, a day must match
both fields (so a plain `*` leaves the other field alone to decide); when both are restricted, a day
matching either fires (`0 0 1,15 * 1` is the 1st, the 15th and every Monday).

`every D` fires at whole multiples of D since 1970-01-01T00:00Z. The runtime's scheduler uses
`iter_fire_times`, so `tqc next`, `tqc deploy` and real runs agree.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from tqflow.errors import PlanError
from tqflow.plan.model import TriggerPlan

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
HORIZON_YEARS = 500  # a cron that can fire fires within 28 years; this bounds any search

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# name, low, high, names (index 0 = low)
_FIELDS = {
    "second": (0, 59, None),
    "minute": (0, 59, None),
    "hour": (0, 23, None),
    "day of month": (1, 31, None),
    "month": (1, 12, MONTHS),
    "day of week": (0, 7, WEEKDAYS),
}


class CronError(PlanError, ValueError):
    """A cron expression that does not follow the grammar (the message says which field and why)."""


@dataclass(frozen=True)
class Cron:
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday … 6 = Saturday (7 is folded into 0)
    days_or: bool  # Vixie: both day fields restricted -> either matches; else both must

    def day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        by_month = day.day in self.days
        by_week = (day.isoweekday() % 7) in self.weekdays
        return (by_month or by_week) if self.days_or else (by_month and by_week)

    def matches(self, local: dt.datetime) -> bool:
        """Whether a naive local wall-clock time is one this cron names."""
        return (
            local.microsecond == 0
            and local.second in self.seconds
            and local.minute in self.minutes
            and local.hour in self.hours
            and self.day_matches(local.date())
        )

    def times_between(self, low: dt.datetime, high: dt.datetime) -> Iterator[dt.datetime]:
        """The naive local times this cron names in [low, high], ascending."""
        day = low.date()
        while day <= high.date():
            if self.day_matches(day):
                first_day, last_day = day == low.date(), day == high.date()
                for hour in self.hours:
                    if (first_day and hour < low.hour) or (last_day and hour > high.hour):
                        continue
                    for minute in self.minutes:
                        if first_day and (hour, minute) < (low.hour, low.minute):
                            continue
                        if last_day and (hour, minute) > (high.hour, high.minute):
                            break
                        for second in self.seconds:
                            t = dt.datetime(day.year, day.month, day.day, hour, minute, second)
                            if low <= t <= high:
                                yield t
            day += dt.timedelta(days=1)

    def can_fire(self) -> bool:
        """False for a cron naming only days that never exist (`0 12 30 2 *`, `0 0 31 4 *`)."""
        return _can_fire(self)


@lru_cache(maxsize=1024)
def parse_cron(expr: str) -> Cron:
    """Parse a cron expression: 5 fields, 6 with seconds first, or a macro (@daily …)."""
    text = " ".join(expr.split())
    text = MACROS.get(text.lower(), text)
    fields = text.split(" ") if text else []
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise CronError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"this has {len(fields)}"
        )
    names = ("second", "minute", "hour", "day of month", "month", "day of week")
    values = [_named_field(field, name) for field, name in zip(fields, names, strict=True)]
    dom, dow = fields[3], fields[5]
    star = dom[:1] in ("*", "?") or dow[:1] in ("*", "?")
    return Cron(
        seconds=tuple(sorted(values[0])),
        minutes=tuple(sorted(values[1])),
        hours=tuple(sorted(values[2])),
        days=frozenset(values[3]),
        months=frozenset(values[4]),
        weekdays=frozenset(d % 7 for d in values[5]),
        days_or=not star,
    )


def field_problem(field: str, name: str) -> str | None:
    """What is wrong with one cron field (None when it is fine); `name` as in `_FIELDS`."""
    try:
        _parse_field(field, name)
    except CronError as err:
        return str(err)
    return None


def _named_field(field: str, name: str) -> set[int]:
    """A field's values; an error names the field (the cron expression's reader names the expression)."""
    try:
        return _parse_field(field, name)
    except CronError as err:
        raise CronError(f"{name} field `{field}`: {err}") from None


def _parse_field(field: str, name: str) -> set[int]:
    low, high, names = _FIELDS[name]
    result: set[int] = set()
    if not field:
        raise CronError("empty field")
    for part in field.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"step `{step_text}` is not a whole number ≥ 1")
            step = int(step_text)
        if base in ("*", "?"):
            start, end = low, high
        else:
            first, dash, last = base.partition("-")
            start = _number(first, name, low, high, names)
            end = _number(last, name, low, high, names) if dash else (high if slash else start)
            if end < start:
                raise CronError(f"range `{base}` goes backwards")
        result.update(range(start, end + 1, step))
    return result


def _number(text: str, name: str, low: int, high: int, names: list[str] | None) -> int:
    if text.isdigit():
        number = int(text)
    elif names is not None and text.lower() in names:
        number = names.index(text.lower()) + low
    else:
        named = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"`{text}` is not a number{named}")
    if not low <= number <= high:
        raise CronError(f"{number} is out of range {low}-{high}")
    return number


@lru_cache(maxsize=1024)
def _can_fire(cron: Cron) -> bool:
    if cron.days_or and cron.weekdays:
        return True  # every month has every weekday
    for month in cron.months:
        for day in cron.days:
            if day > (29 if month == 2 else calendar.monthrange(2001, month)[1]):
                continue
            # A date's weekday runs through all seven within 28 years (Feb 29: within 400).
            years = range(2000, 2400, 4) if (month, day) == (2, 29) else range(2000, 2028)
            for year in years:
                if not calendar.isleap(year) and (month, day) == (2, 29):
                    continue
                if cron.day_matches(dt.date(year, month, day)):
                    return True
    return False


def next_fire_times(trigger: TriggerPlan, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next `count` fire times strictly after `after` (aware), as aware times in the trigger's zone."""
    times: list[dt.datetime] = []
    if count <= 0:
        return times
    for instant in iter_fire_times(trigger, after):
        times.append(instant)
        if len(times) >= count:
            break
    return times


def iter_fire_times(trigger: TriggerPlan, after: dt.datetime) -> Iterator[dt.datetime]:
    """Every fire time strictly after `after` (aware), ascending, in the trigger's zone. Endless for
    `every` and for a cron that can fire (bounded by HORIZON_YEARS); empty for one that cannot."""
    if trigger.kind == "event":
        return  # fires on events, never on the clock
    zone = ZoneInfo(trigger.timezone)
    after = after.astimezone(UTC)
    if trigger.kind == "at":
        at = dt.datetime.fromisoformat(trigger.at or "")
        if at.tzinfo is None:
            at = at.replace(tzinfo=zone)
        if at > after:
            yield at.astimezone(zone)
        return
    if trigger.kind == "every":
        step = dt.timedelta(milliseconds=trigger.every_ms or 1)
        index = (after - EPOCH) // step + 1
        while True:
            yield (EPOCH + step * index).astimezone(zone)
            index += 1
    yield from cron_fire_times(
        parse_cron(trigger.cron or ""), zone, after, trigger.on_dst_gap, trigger.on_dst_repeat
    )


def cron_fire_times(
    cron: Cron, zone: ZoneInfo, after: dt.datetime, on_gap: str = "shift", on_repeat: str = "first"
) -> Iterator[dt.datetime]:
    """The instants a cron names in `zone` strictly after `after`, ascending, under the DST policies.

    Works in UTC windows [u, v): every instant in the window comes from a local time L with
    L - instant equal to an offset in force near the window (for a shifted time, the offset before
    its gap, at most a day earlier), so the local times [u + min offset, v + max offset] are all
    the candidates; they are placed, filtered to the window and sorted."""
    if not cron.can_fire():
        return
    after = after.astimezone(UTC)
    fine = len(cron.seconds) > 1 or len(cron.minutes) > 1
    window = dt.timedelta(hours=1) if fine else dt.timedelta(days=1)
    start = after
    end_of_search = after + dt.timedelta(days=366 * HORIZON_YEARS)
    while start < end_of_search:
        stop = start + window
        low_off, high_off = _offset_range(zone, start - dt.timedelta(hours=26), stop)
        low = (start + low_off).replace(tzinfo=None)
        high = (stop + high_off).replace(tzinfo=None)
        found = set()
        for local in cron.times_between(low, high):
            for instant in place(local, zone, on_gap, on_repeat):
                utc = instant.astimezone(UTC)
                if start <= utc < stop and utc > after:
                    found.add(utc)
        for utc in sorted(found):
            yield utc.astimezone(zone)
        start = stop
        if not found and window < dt.timedelta(days=32):
            window *= 2  # sparse schedules (yearly) are searched in growing windows


def _offset_range(zone: ZoneInfo, low: dt.datetime, high: dt.datetime) -> tuple[dt.timedelta, dt.timedelta]:
    """The smallest and largest UTC offsets of `zone` in [low, high] (sampled every 30 minutes)."""
    offsets = set()
    t = low
    step = dt.timedelta(minutes=30)
    while t <= high:
        offsets.add(t.astimezone(zone).utcoffset())
        t += step
    offsets.add(high.astimezone(zone).utcoffset())
    known = [o for o in offsets if o is not None]
    return min(known), max(known)


def place(local: dt.datetime, zone: ZoneInfo, on_gap: str, on_repeat: str) -> list[dt.datetime]:
    """The instants a local wall-clock time stands for in `zone`, under the DST policies."""
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    if not exists(local, zone):
        # zoneinfo gives a missing time the offset before the change (fold=0): the shifted instant.
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
    parsed = parse_cron(cron)
    hits = []
    for start, end, kind in _transitions(zone, year):
        for local in parsed.times_between(start, end - dt.timedelta(microseconds=1)):
            hits.append(DstHit(kind, local, start, end))
            break
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
            if delta > dt.timedelta(0):  # clocks go forward: [local - delta, local) does not exist
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
