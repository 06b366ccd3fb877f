"""Pass helper: check a flow's `schedule` lines and lower them to `TriggerPlan`s.

Checks: cron fields and ranges, IANA time zones (with did-you-mean), a missing zone (warning, UTC),
scheduled times in a DST gap or repeat without a stated policy (warning), `catchup all` without a
bound, unknown options and values, `at` times without an offset; an event trigger's name, and the
`event.FIELD` its params and `key` read (any JSON: the event's data is not typed).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from tqflow.compiler.context import Context
from tqflow.compiler.expressions import Scope, lower
from tqflow.compiler.typecheck import TypeEnv, check_value
from tqflow.compiler.types import ANY
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import did_you_mean
from tqflow.dsl.source import Span
from tqflow.plan import CatchupPlan, TriggerPlan
from tqflow.plan.firetimes import MACROS, dst_hits, field_problem, parse_cron

OPTIONS = {
    "catchup": ("none", "last(N)", "all(within=DURATION)"),
    "overlap": ("skip", "queue", "allow"),
    "on_dst_gap": ("skip", "shift"),
    "on_dst_repeat": ("first", "both"),
}
CRON_FIELDS = (  # name, low, high
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
CRON_MACROS = MACROS
DST_CHECK_YEARS = (2026, 2027)  # fixed years, so the same file always gives the same warnings
EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # runtime/events.py checks the same


def lower_schedules(ctx: Context, flow: ast.Flow, env: TypeEnv) -> list[TriggerPlan]:
    triggers = []
    for index, schedule in enumerate(flow.schedules):
        params = _trigger_params(ctx, schedule, flow, env)
        trigger = _lower_schedule(ctx, schedule, f"{schedule.kind}:{index}", params, flow)
        if trigger is not None:
            triggers.append(trigger)
    return triggers


def _trigger_params(ctx: Context, schedule: ast.Schedule, flow: ast.Flow, env: TypeEnv) -> dict[str, Any]:
    """`params { day = run.date - 1d }`: checked against the flow's parameters and their types."""
    declared = {p.name for p in flow.params}
    result: dict[str, Any] = {}
    env = _event_env(env) if schedule.kind == "event" else env
    for arg in schedule.params:
        name = arg.name or ""
        if name not in declared:
            ctx.error(
                "TQ0204",
                f"flow `{flow.name}` has no parameter `{name}`",
                arg.name_span,
                help=did_you_mean(name, declared),
            )
            continue
        if name in result:
            ctx.error("TQ0606", f"parameter `{name}` is given twice", arg.span)
        result[name] = lower(ctx, arg.value, _scope(flow, schedule))
        check_value(ctx, arg.value, env.params[name], env, f"parameter `{name}`")
    return result


def _scope(flow: ast.Flow, schedule: ast.Schedule) -> Scope:
    """What a schedule's expressions may read: the flow's parameters, `run`, and an event's `event`."""
    scope = Scope(flow.name, {p.name for p in flow.params}, set())
    if schedule.kind == "event":
        scope.variables.add("event")
    return scope


def _event_env(env: TypeEnv) -> TypeEnv:
    return TypeEnv(
        env.params, env.jobs, env.job_spans, {**env.variables, "event": ANY}, env.param_names, env.job_names
    )


def _lower_event(ctx: Context, flow: ast.Flow, schedule: ast.Schedule, fields: dict[str, Any]) -> bool:
    name = str(schedule.value.value)
    if not EVENT_NAME.match(name):
        ctx.error(
            "TQ0606",
            f"event name `{name}` must be 1-128 characters of letters, digits, `_`, `.`, `:` or `-`",
            schedule.value.span,
            help='name it like "order.paid"',
        )
        return False
    fields["event"] = name
    for option in schedule.options:
        ctx.error(
            "TQ0606",
            f"`{option.name}` does not apply to an event trigger (each event starts its run)",
            option.span,
            help="an event trigger takes `params { … }` and `key EXPR [within D]`",
        )
    if schedule.key is not None:
        from tqflow.compiler.lower import check_deterministic  # lower imports this module

        # `run.id` is new for every event: such a key never deduplicates
        check_deterministic(ctx, schedule.key, help="build the key from the event, like `key event.id`")
        fields["key"] = lower(ctx, schedule.key, _scope(flow, schedule))
        if schedule.key_within is not None:
            within = int(str(schedule.key_within.value))
            if within <= 0:
                ctx.error("TQ0606", "a key's window must be longer than 0", schedule.key_within.span)
                return False
            fields["key_within_ms"] = within
    return True


def _lower_schedule(
    ctx: Context, schedule: ast.Schedule, name: str, params: dict[str, Any], flow: ast.Flow
) -> TriggerPlan | None:
    fields: dict[str, Any] = {"name": name, "kind": schedule.kind, "params": params}
    if schedule.kind == "event":
        return TriggerPlan(**fields) if _lower_event(ctx, flow, schedule, fields) else None
    if schedule.key is not None:
        ctx.error(
            "TQ0606",
            '`key` deduplicates events: it belongs to a `schedule event "NAME"`',
            schedule.key.span,
            help="a clock schedule starts one run a tick already",
        )
    fields.update(_options(ctx, schedule))
    if schedule.kind == "cron":
        cron = _check_cron(ctx, schedule.value)
        zone = _check_zone(ctx, schedule)
        if cron is None or zone is None:
            return None
        fields["cron"], fields["timezone"] = cron, zone
        _check_dst(ctx, schedule, cron, zone, fields)
    elif schedule.kind == "every":
        every = int(str(schedule.value.value))
        if every < 1000:
            ctx.error("TQ0601", "`every` needs an interval of at least 1s", schedule.value.span)
            return None
        fields["every_ms"] = every
    else:
        at = _check_at(ctx, schedule.value)
        if at is None:
            return None
        fields["at"] = at
    return TriggerPlan(**fields)


def _options(ctx: Context, schedule: ast.Schedule) -> dict[str, Any]:
    result: dict[str, Any] = {}
    seen: set[str] = set()
    for option in schedule.options:
        if option.name not in OPTIONS:
            ctx.error(
                "TQ0606",
                f"unknown schedule option `{option.name}`",
                option.name_span,
                help=did_you_mean(option.name, OPTIONS) or f"options are {', '.join(OPTIONS)}",
            )
            continue
        if option.name in seen:
            ctx.error("TQ0606", f"`{option.name}` is given twice", option.span)
        seen.add(option.name)
        if option.name == "catchup":
            catchup = _catchup(ctx, option.value)
            if catchup is not None:
                result["catchup"] = catchup
            continue
        value = option.value.id if isinstance(option.value, ast.Name) else None
        allowed = OPTIONS[option.name]
        if value not in allowed:
            ctx.error(
                "TQ0606",
                f"`{option.name}` is one of {', '.join(allowed)}",
                option.value.span,
                help=did_you_mean(value or "", allowed),
            )
            continue
        result[option.name] = value
    if schedule.kind == "at" and "catchup" in result:
        ctx.error("TQ0606", "`catchup` does not apply to a one-off `at` schedule", schedule.span)
    return result


def _catchup(ctx: Context, value: ast.Expr | ast.Call) -> CatchupPlan | None:
    if isinstance(value, ast.Name) and value.id == "none":
        return CatchupPlan(kind="none")
    if isinstance(value, ast.Name) and value.id == "all":
        ctx.error(
            "TQ0605",
            "`catchup all` has no bound",
            value.span,
            label="every missed tick since the last run would start at once",
            notes=("a scheduler that was down for a month would start a month of runs (airflow #30195)",),
            help="bound it: `catchup all(within=7d)`, or keep only the latest with `catchup last(1)`",
        )
        return None
    if isinstance(value, ast.Call) and value.func == "last" and len(value.args) == 1:
        count = value.args[0].value
        if isinstance(count, ast.Literal) and count.kind == "int" and int(str(count.value)) >= 1:
            return CatchupPlan(kind="last", count=int(str(count.value)))
        ctx.error("TQ0606", "`last(N)` needs a whole number N ≥ 1", count.span)
        return None
    if isinstance(value, ast.Call) and value.func == "all":
        within = next((a.value for a in value.args if a.name == "within"), None)
        if isinstance(within, ast.Literal) and within.kind == "duration" and len(value.args) == 1:
            return CatchupPlan(kind="all", within_ms=int(str(within.value)))
        ctx.error("TQ0605", "`catchup all(…)` takes one bound, like `all(within=7d)`", value.span)
        return None
    shown = value.func if isinstance(value, ast.Call) else getattr(value, "id", "")
    ctx.error(
        "TQ0606",
        f"`catchup` is `none`, `last(N)` or `all(within=DURATION)`, not `{shown}`",
        value.span,
        help=did_you_mean(shown, ("none", "last", "all")),
    )
    return None


def _check_cron(ctx: Context, value: ast.Literal) -> str | None:
    raw = str(value.value)
    text = " ".join(raw.split())
    expanded = CRON_MACROS.get(text.lower(), text)
    fields = expanded.split(" ")
    if len(fields) != 5:
        ctx.error(
            "TQ0601",
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"this has {len(fields)}",
            value.span,
            help='for example "30 2 * * *" is 02:30 every day',
        )
        return None
    positions = _field_positions(raw) if expanded == text else []
    for index, ((name, low, high), field) in enumerate(zip(CRON_FIELDS, fields, strict=True)):
        problem = field_problem(field, name)
        if problem:
            where = positions[index] if len(positions) == 5 else None
            ctx.error(
                "TQ0601",
                f"cron {name} field `{field}`: {problem}",
                _inside(value, *where) if where else value.span,
                label=f"{name} is {low}-{high}",
            )
            return None
    cron = parse_cron(expanded)
    if not cron.can_fire():
        ctx.error(
            "TQ0601",
            f"cron `{text}` can never fire: no date has that day of month in those months",
            _inside(value, positions[2][0], positions[3][1]) if len(positions) == 5 else value.span,
            label="this day never comes",
            notes=("February has at most 29 days; April, June, September and November have 30",),
            help="pick a day of month that the months named have (February: 1-29)",
        )
        return None
    return expanded


def _field_positions(raw: str) -> list[tuple[int, int]]:
    """(start, end) of each whitespace-separated field in the cron text."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", raw)]


def _inside(literal: ast.Literal, start: int, end: int) -> Span:
    """The span of characters [start, end) of a one-line string literal's value (the whole literal
    when the source text holds escapes, so offsets in the value are not offsets in the file)."""
    span = literal.span
    if literal.text != '"' + str(literal.value) + '"' or span.line != span.end_line:
        return span
    first = span.start + 1 + start
    return Span(
        first, span.start + 1 + end, span.line, span.column + 1 + start, span.line, span.column + 1 + end
    )


def _check_zone(ctx: Context, schedule: ast.Schedule) -> str | None:
    if schedule.tz is None:
        ctx.warning(
            "TQ0603",
            "cron schedule without a time zone: UTC is assumed",
            schedule.value.span,
            help=f'say which clock you mean: `cron {schedule.value.text} tz "Europe/Paris"` (or tz "UTC")',
        )
        return "UTC"
    name = str(schedule.tz.value)
    if name in _zones():
        return name
    match = _zone_like(name)
    ctx.error(
        "TQ0602",
        f"unknown time zone `{name}`",
        schedule.tz.span,
        label="not an IANA time zone name",
        help=f"did you mean `{match}`?" if match else did_you_mean(name, _zones()),
        notes=("time zones are IANA names like Europe/Paris, America/New_York or UTC",),
    )
    return None


def _zone_like(name: str) -> str | None:
    """A zone spelt with other capitals (`europe/paris`) or named by its city alone (`Paris`, `new york`)."""
    key = name.lower().replace(" ", "_")
    by_name = {z.lower(): z for z in _zones()}
    if key in by_name:
        return by_name[key]
    cities = sorted(z for z in _zones() if z.lower().rsplit("/", 1)[-1] == key and "/" in z)
    return min(cities, key=len) if cities else None


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _check_dst(ctx: Context, schedule: ast.Schedule, cron: str, zone: str, fields: dict[str, Any]) -> None:
    hits = {h.kind: h for year in DST_CHECK_YEARS for h in dst_hits(cron, ZoneInfo(zone), year)}
    for kind, option, policy in (
        ("gap", "on_dst_gap", "skip|shift"),
        ("repeat", "on_dst_repeat", "first|both"),
    ):
        hit = hits.get(kind)
        if hit is None or option in fields:
            continue
        what, what_many = (
            ("does not exist", "do not exist") if kind == "gap" else ("occurs twice", "occur twice")
        )
        default = "shift" if kind == "gap" else "first"
        outcome = "moved forward by the gap" if kind == "gap" else "started once"
        ctx.warning(
            "TQ0604",
            f"on the day clocks {'go forward' if kind == 'gap' else 'go back'} in {zone}, "
            f"{hit.local:%H:%M} {what}",
            schedule.value.span,
            notes=(
                f"local times from {hit.start:%H:%M} to {hit.end:%H:%M} {what_many} that day",
                f"without a policy the run is {outcome} (`{option} {default}`)",
            ),
            help=f"state what you want in the schedule block: `{option} {policy}`",
        )


def _check_at(ctx: Context, value: ast.Literal) -> str | None:
    text = str(value.value)
    try:
        at = dt.datetime.fromisoformat(re.sub(r"Z$", "+00:00", text))
    except ValueError:
        ctx.error(
            "TQ0607",
            f"`{text}` is not an ISO 8601 date and time",
            value.span,
            help='write it like "2026-12-01T09:00:00+01:00"',
        )
        return None
    if at.tzinfo is None:
        ctx.error(
            "TQ0607",
            f"`{text}` has no UTC offset, so the moment it names is ambiguous",
            value.span,
            help=f'add the offset, like "{text}+01:00" (or Z for UTC)',
        )
        return None
    return at.isoformat()
