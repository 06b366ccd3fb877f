"""Tick computation: cron in IANA zones across DST days, `every`, `at`, and the catch-up policies."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tqflow.plan import CatchupPlan, TriggerPlan
from tqflow.plan.firetimes import next_fire_times
from tqflow.runtime.cluster.schedule import ScheduleError, next_ticks, plan_ticks

PARIS = ZoneInfo("Europe/Paris")


def ms(
    year: int, month: int, day: int, hour: int, minute: int = 0, tz: ZoneInfo = PARIS, fold: int = 0
) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold).timestamp() * 1000)


def utc(instant: int) -> str:
    return dt.datetime.fromtimestamp(instant / 1000, dt.UTC).strftime("%m-%d %H:%M")


def cron(expr: str, **options: object) -> TriggerPlan:
    return TriggerPlan(name="cron:0", kind="cron", cron=expr, timezone="Europe/Paris", **options)  # type: ignore[arg-type]


def test_cron_follows_local_time_across_dst() -> None:
    daily = cron("30 9 * * *")
    fired = next_ticks(daily, ms(2026, 3, 28, 0), 2)
    assert [utc(t) for t in fired] == ["03-28 08:30", "03-29 07:30"]  # 09:30 CET, then 09:30 CEST


def test_a_time_in_the_spring_gap_is_shifted_or_skipped() -> None:
    start = ms(2026, 3, 28, 12)
    shifted = next_ticks(cron("30 2 * * *"), start, 2)
    assert [utc(t) for t in shifted] == ["03-29 01:30", "03-30 00:30"]  # 02:30 does not exist: 03:30 CEST
    skipped = next_ticks(cron("30 2 * * *", on_dst_gap="skip"), start, 1)
    assert [utc(t) for t in skipped] == ["03-30 00:30"]


def test_a_repeated_time_fires_once_or_twice() -> None:
    start = ms(2026, 10, 24, 12)
    first = next_ticks(cron("30 2 * * *"), start, 2)
    assert [utc(t) for t in first] == ["10-25 00:30", "10-26 01:30"]
    both = next_ticks(cron("30 2 * * *", on_dst_repeat="both"), start, 3)
    assert [utc(t) for t in both] == ["10-25 00:30", "10-25 01:30", "10-26 01:30"]


def test_six_field_cron_has_seconds_first() -> None:
    every5 = TriggerPlan(name="c", kind="cron", cron="*/5 * * * * *")
    assert next_ticks(every5, 1_000, 3) == [5_000, 10_000, 15_000]


def test_every_is_aligned_to_the_epoch_and_at_fires_once() -> None:
    every = TriggerPlan(name="e", kind="every", every_ms=60_000)
    assert next_ticks(every, 61_000, 2) == [120_000, 180_000]
    at = TriggerPlan(name="a", kind="at", at="2026-12-01T09:00:00+01:00")
    instant = ms(2026, 12, 1, 9)
    assert next_ticks(at, instant - 1, 5) == [instant]
    assert next_ticks(at, instant, 5) == []


def test_bad_schedules_are_explained() -> None:
    with pytest.raises(ScheduleError, match="invalid cron"):
        next_ticks(TriggerPlan(name="c", kind="cron", cron="61 * * * *"), 0, 1)
    with pytest.raises(ScheduleError, match="unknown time zone"):
        next_ticks(TriggerPlan(name="c", kind="cron", cron="* * * * *", timezone="Mars/Olympus"), 0, 1)


@pytest.mark.parametrize(
    ("catchup", "fired", "skipped"),
    [
        (CatchupPlan(), [100_000], 9),
        (CatchupPlan(kind="last", count=3), [70_000, 80_000, 90_000, 100_000], 6),
        (CatchupPlan(kind="all", within_ms=45_000), [60_000, 70_000, 80_000, 90_000, 100_000], 5),
    ],
)
def test_missed_ticks_follow_the_catchup_policy(catchup: CatchupPlan, fired: list[int], skipped: int) -> None:
    every = TriggerPlan(name="e", kind="every", every_ms=10_000, catchup=catchup)
    plan = plan_ticks(every, last_ms=5_000, now_ms=101_000, grace_ms=2_000)
    assert (plan.fire, plan.skipped) == (fired, skipped)
    assert plan.skip_upto == (min(fired) - 10_000)


@pytest.mark.parametrize(
    "trigger",
    [
        cron("30 2 * * *"),
        cron("30 2 * * *", on_dst_gap="skip", on_dst_repeat="both"),
        cron("*/20 1-3 * * *", on_dst_repeat="both"),
        TriggerPlan(name="e", kind="every", every_ms=3_600_000),
    ],
)
def test_the_scheduler_agrees_with_tqc_next(trigger: TriggerPlan) -> None:
    for start in (ms(2026, 3, 28, 12), ms(2026, 10, 24, 12)):
        expected = next_fire_times(trigger, dt.datetime.fromtimestamp(start / 1000, dt.UTC), 12)
        assert next_ticks(trigger, start, 12) == [int(t.timestamp() * 1000) for t in expected]
