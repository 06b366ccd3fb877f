"""Fire times against an independent brute-force reference.

The reference walks UTC instants minute by minute, converts each to the zone's wall clock with zoneinfo and
decides from what it sees: a local time seen for the first time fires; seen again (the autumn repeat) it
fires only under `on_dst_repeat both`; local minutes the walk jumps over (the spring gap) fire under
`on_dst_gap shift` at the instant the clock would have shown them had it not jumped. The cron is drawn as
field sets, so the reference reads no cron text and shares no code with `tqflow.plan.firetimes`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tqflow.plan import TriggerPlan
from tqflow.plan.firetimes import next_fire_times, parse_cron
from tqflow.runtime.cluster.schedule import next_ticks

UTC = dt.UTC
MINUTE = dt.timedelta(minutes=1)
# 1-hour DST (both hemispheres), 30-minute DST (Lord Howe), a half-hour base offset, 2-hour DST (Troll),
# and a zone without DST.
ZONES = [
    "America/New_York",
    "Europe/Paris",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Australia/Adelaide",
    "Antarctica/Troll",
    "Asia/Kolkata",
]


@dataclass(frozen=True)
class Fields:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_star: bool  # day-of-month or day-of-week written starting with `*`
    text: str

    def matches(self, local: dt.datetime) -> bool:
        if local.minute not in self.minutes or local.hour not in self.hours or local.month not in self.months:
            return False
        by_month = local.day in self.days
        by_week = local.isoweekday() % 7 in self.weekdays
        return (by_month and by_week) if self.day_star else (by_month or by_week)


def reference(
    fields: Fields, zone: ZoneInfo, after: dt.datetime, until: dt.datetime, gap: str, repeat: str
) -> list[dt.datetime]:
    """Fire instants in (after, until], by brute force."""
    fired: set[dt.datetime] = set()
    seen: set[dt.datetime] = set()
    t = after - dt.timedelta(days=2)
    previous: tuple[dt.datetime, dt.datetime] | None = None
    while t <= until + dt.timedelta(days=1):
        local = t.astimezone(zone).replace(tzinfo=None)
        if previous is not None and local - previous[1] > MINUTE:  # the clock jumped over a gap
            skipped = previous[1] + MINUTE
            while skipped < local:
                if gap == "shift" and fields.matches(skipped):
                    fired.add(previous[0] + (skipped - previous[1]))
                skipped += MINUTE
        if fields.matches(local) and (local not in seen or repeat == "both"):
            fired.add(t)
        seen.add(local)
        previous = (t, local)
        t += MINUTE
    return sorted(x for x in fired if after < x <= until)


def _field(
    draw: st.DrawFn, low: int, high: int, focus: tuple[int, int] | None = None
) -> tuple[str, set[int]]:
    kind = draw(st.sampled_from(["star", "step", "list", "range", "rangestep"]))
    lo, hi = focus or (low, high)
    if kind == "star":
        return "*", set(range(low, high + 1))
    if kind == "step":
        step = draw(st.integers(1, max(1, (high - low) // 2)))
        return f"*/{step}", set(range(low, high + 1, step))
    if kind == "list":
        values = draw(st.sets(st.integers(lo, hi), min_size=1, max_size=4))
        return ",".join(map(str, sorted(values))), values
    a = draw(st.integers(lo, hi))
    b = draw(st.integers(a, hi))
    if kind == "range":
        return f"{a}-{b}", set(range(a, b + 1))
    step = draw(st.integers(1, 7))
    return f"{a}-{b}/{step}", set(range(a, b + 1, step))


@st.composite
def crons(draw: st.DrawFn) -> Fields:
    minute_text, minutes = _field(draw, 0, 59)
    hour_text, hours = _field(draw, 0, 23, focus=(0, 4))  # where the transitions are
    if draw(st.booleans()):
        day_text, days, dow_text, weekdays = "*", set(range(1, 32)), "*", set(range(7))
    else:
        day_text, days = _field(draw, 1, 31)
        dow_text, weekdays = _field(draw, 0, 6)
    return Fields(
        frozenset(minutes),
        frozenset(hours),
        frozenset(days),
        frozenset(range(1, 13)),
        frozenset(weekdays),
        day_text.startswith("*") or dow_text.startswith("*"),
        f"{minute_text} {hour_text} {day_text} * {dow_text}",
    )


def _transition_near(zone: ZoneInfo, year: int, spring: bool) -> dt.datetime:
    """The first offset change of `year` that moves clocks forward (spring) or back."""
    t = dt.datetime(year, 1, 1, tzinfo=UTC)
    while t.year == year:
        a, b = t.astimezone(zone).utcoffset(), (t + dt.timedelta(hours=6)).astimezone(zone).utcoffset()
        if a is not None and b is not None and a != b and (b > a) == spring:
            return t
        t += dt.timedelta(hours=6)
    return dt.datetime(year, 6, 1, tzinfo=UTC)  # a zone without DST


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=crons(),
    zone_name=st.sampled_from(ZONES),
    year=st.integers(2024, 2030),
    spring=st.booleans(),
    lead=st.integers(-36 * 60, 12 * 60),
    gap=st.sampled_from(["skip", "shift"]),
    repeat=st.sampled_from(["first", "both"]),
)
def test_fire_times_match_a_brute_force_reference(
    fields: Fields, zone_name: str, year: int, spring: bool, lead: int, gap: str, repeat: str
) -> None:
    zone = ZoneInfo(zone_name)
    after = _transition_near(zone, year, spring) + dt.timedelta(minutes=lead)
    until = after + dt.timedelta(hours=48)
    expected = reference(fields, zone, after, until, gap, repeat)
    trigger = TriggerPlan(
        name="c", kind="cron", cron=fields.text, timezone=zone_name, on_dst_gap=gap, on_dst_repeat=repeat
    )  # type: ignore[arg-type]
    got = next_fire_times(trigger, after, len(expected) + 1)
    assert [t.astimezone(UTC) for t in got[: len(expected)]] == expected
    assert len(got) <= len(expected) or got[len(expected)] > until  # nothing missed at the end
    assert got == sorted(got, key=lambda t: t.astimezone(UTC))
    # the scheduler in the runtime computes the same ticks
    after_ms = int(after.timestamp() * 1000)
    ticks = next_ticks(trigger, after_ms, len(expected))
    assert ticks == [int(t.timestamp() * 1000) for t in expected]


def _local(trigger: TriggerPlan, after: str, count: int) -> list[str]:
    return [t.isoformat() for t in next_fire_times(trigger, dt.datetime.fromisoformat(after), count)]


def test_repeat_both_fires_every_time_of_the_repeated_hour_twice() -> None:
    plan = TriggerPlan(
        name="c", kind="cron", cron="*/15 * * * *", timezone="America/New_York", on_dst_repeat="both"
    )
    assert _local(plan, "2026-11-01T00:50:00-04:00", 9) == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:15:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:45:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:15:00-05:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T01:45:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]


def test_shifted_times_do_not_hide_real_times_after_a_30_minute_gap() -> None:
    plan = TriggerPlan(
        name="c", kind="cron", cron="*/7 * * * *", timezone="Australia/Lord_Howe", on_dst_gap="shift"
    )
    fired = _local(plan, "2026-10-04T01:55:00+10:30", 11)
    assert fired == [
        "2026-10-04T01:56:00+10:30",
        "2026-10-04T02:30:00+11:00",  # 02:00 shifted
        "2026-10-04T02:35:00+11:00",
        "2026-10-04T02:37:00+11:00",  # 02:07 shifted
        "2026-10-04T02:42:00+11:00",
        "2026-10-04T02:44:00+11:00",
        "2026-10-04T02:49:00+11:00",
        "2026-10-04T02:51:00+11:00",
        "2026-10-04T02:56:00+11:00",
        "2026-10-04T02:58:00+11:00",  # 02:28 shifted
        "2026-10-04T03:00:00+11:00",  # minute 0 of the next hour
    ]


def test_day_of_month_and_day_of_week_follow_vixie_cron() -> None:
    def days(cron: str) -> list[str]:
        plan = TriggerPlan(name="c", kind="cron", cron=cron, timezone="UTC")
        return [f"{t:%a %d}" for t in next_fire_times(plan, dt.datetime(2026, 6, 1, tzinfo=UTC), 5)]

    assert days("0 0 */2 * 1") == ["Mon 15", "Mon 29", "Mon 13", "Mon 27", "Mon 03"]  # odd days AND Monday
    assert days("0 0 * * 1") == ["Mon 08", "Mon 15", "Mon 22", "Mon 29", "Mon 06"]  # `*`: Mondays alone
    assert days("0 0 1,15 * 1") == ["Mon 08", "Mon 15", "Mon 22", "Mon 29", "Wed 01"]  # both: either
    assert days("0 0 13 * *") == ["Sat 13", "Mon 13", "Thu 13", "Sun 13", "Tue 13"]


@pytest.mark.parametrize("cron", ["0 12 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 2 *"])
def test_a_cron_that_can_never_fire_yields_nothing(cron: str) -> None:
    assert not parse_cron(cron).can_fire()
    plan = TriggerPlan(name="c", kind="cron", cron=cron, timezone="UTC")
    assert next_fire_times(plan, dt.datetime(2026, 1, 1, tzinfo=UTC), 3) == []
    assert next_ticks(plan, 0, 3) == []


def test_rare_crons_still_fire() -> None:
    leap = TriggerPlan(name="c", kind="cron", cron="0 0 29 2 *", timezone="UTC")
    assert _local(leap, "2026-01-01T00:00:00+00:00", 2) == [
        "2028-02-29T00:00:00+00:00",
        "2032-02-29T00:00:00+00:00",
    ]
    assert parse_cron("0 0 29 2 1").can_fire()  # both restricted: Mondays in February too
