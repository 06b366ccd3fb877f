"""Pass and helpers for flow control: `limiter NAME = rate(…)` / `concurrency(N)` declarations, and a
job's `limit NAME [by EXPR]` and `fair by EXPR [weight EXPR]`, lowered to the plan's `LimiterPlan`,
`LimitUse` and `FairPlan` (the runtime enforces them).

A limiter's plan name is qualified by the file that declares it (`throttle.api` for `limiter api` in
throttle.tqflow), so every flow that imports it shares one limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tqflow.compiler.context import Context
from tqflow.compiler.expressions import Scope, lower
from tqflow.compiler.typecheck import TypeEnv, infer
from tqflow.compiler.types import Ty
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Label, did_you_mean
from tqflow.dsl.source import Span
from tqflow.plan.durations import DURATION_UNITS_MS, format_duration
from tqflow.plan.model import ExprTree, FairPlan, LimiterPlan, LimitUse

KINDS = ("rate", "concurrency")
RATE_OPTIONS = ("burst",)
MAX_COUNT = 1_000_000_000  # counts stay exact in Redis's Lua numbers (doubles) with room to add
KEY_TYPES = ("Str", "Int")
WEIGHT_TYPES = ("Int", "Float", "Decimal")
UNIT_SPELLINGS = {  # how other tools write a rate's unit
    **dict.fromkeys(("sec", "secs", "second", "seconds"), "s"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "m"),
    **dict.fromkeys(("hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("day", "days"), "d"),
}


# ---- declarations ------------------------------------------------------------------------------


def lower_limiters(ctx: Context) -> None:
    """Each `limiter` declaration -> its LimiterPlan (checked even when no job uses it)."""
    stem = qualifier(ctx.module.source.path)
    for decl in ctx.module.limiters:
        first = ctx.limiters.get(decl.name)
        if first is not None:
            ctx.error(
                "TQ0103",
                f"limiter `{decl.name}` is declared twice",
                decl.name_span,
                labels=(Label(first.name_span, "first declared here"),),
            )
            continue
        ctx.limiters[decl.name] = decl
        errors = len(ctx.diagnostics.errors)
        ctx.limiter_plans[decl.name] = lower_limiter(ctx, decl, f"{stem}.{decl.name}")
        if len(ctx.diagnostics.errors) > errors:
            ctx.unresolved.add(decl.name)  # reported: its uses stay quiet, its name is not compared
    _check_qualified_names(ctx)


def _check_qualified_names(ctx: Context) -> None:
    """Two limiters whose plan names are equal (`limiter api` here and in an imported file of the same
    name) would share one limit in Redis: refused unless they are the same definition."""
    seen: dict[str, tuple[LimiterPlan, Span]] = {}
    for local, plan in ctx.limiter_plans.items():
        if local not in ctx.unresolved:
            seen[plan.name] = (plan, ctx.limiters[local].name_span)
    spans = {i.alias: i.span for i in ctx.module.imports}
    for ref, plan in ctx.imported_limiters.items():
        span = spans[ref.partition(".")[0]]
        first = seen.setdefault(plan.name, (plan, span))
        if first[0] != plan:
            ctx.error(
                "TQ0103",
                f"two limiters are named `{plan.name}` with different definitions",
                span,
                label=f"its `{ref}` is `{_written(plan)}`",
                labels=(Label(first[1], f"this one is `{_written(first[0])}`"),),
                notes=("a limiter's name is its file's name and its own, so both would be one limit",),
                help="rename one of the limiters (or one of the files)",
            )


def _written(plan: LimiterPlan) -> str:
    if plan.kind == "concurrency":
        return f"concurrency({plan.limit})"
    burst = f", burst={plan.burst}" if plan.burst is not None else ""
    return f"rate({plan.rate}/{format_duration(plan.period_ms)}{burst})"


def qualifier(path: str) -> str:
    """The prefix of a file's limiter names: its stem, with what may not be in a Redis key part (spaces,
    braces, `|`) made `_`."""
    return re.sub(r"[^\w.-]", "_", Path(path).stem) or "_"


def lower_limiter(ctx: Context, decl: ast.LimiterDecl, qualified: str) -> LimiterPlan:
    call = decl.call
    if call.func not in KINDS:
        ctx.error(
            "TQ0801",
            f"unknown limiter kind `{call.func}`",
            _head(call),
            help=did_you_mean(call.func, KINDS) or "a limiter is `rate(10/s, burst=20)` or `concurrency(5)`",
        )
        return LimiterPlan(name=qualified, kind="rate")
    if call.func == "rate":
        return _rate(ctx, call, qualified)
    return _concurrency(ctx, call, qualified)


def _head(call: ast.Call) -> Span:
    """The span of a call's name (`rate` of `rate(10/s)`)."""
    span = call.span
    return Span(
        span.start,
        span.start + len(call.func),
        span.line,
        span.column,
        span.line,
        span.column + len(call.func),
    )


def _rate(ctx: Context, call: ast.Call, qualified: str) -> LimiterPlan:
    positional = [a for a in call.args if a.name is None]
    rate, period_ms = 0, 1000
    if not positional:
        ctx.error(
            "TQ0801",
            "`rate(…)` needs a rate, like `rate(10/s)` or `rate(600/m, burst=50)`",
            call.span,
        )
    else:
        rate, period_ms = _rate_value(ctx, positional[0].value)
        for extra in positional[1:]:
            ctx.error(
                "TQ0801",
                "`rate(…)` takes one rate; other options are named, like `burst=20`",
                extra.span,
            )
    burst: int | None = None
    for arg in call.args:
        if arg.name is None:
            continue
        if arg.name != "burst":
            ctx.error(
                "TQ0801",
                f"`rate(…)` has no option `{arg.name}`",
                arg.name_span,
                help=did_you_mean(arg.name, RATE_OPTIONS) or "its one option is `burst=N`",
            )
            continue
        burst = _count(ctx, arg.value, "`burst`")
        if burst == 0:
            ctx.error(
                "TQ0802",
                "a rate limiter with `burst=0` can never admit a job",
                arg.value.span,
                label="the bucket holds no token, ever",
                help="the burst is how many jobs may start at once after a quiet spell; use at least 1",
            )
    plan = LimiterPlan(name=qualified, kind="rate", rate=rate, period_ms=period_ms, burst=burst)
    return plan


def _rate_value(ctx: Context, value: ast.Expr) -> tuple[int, int]:
    """`10/s` -> (10, 1000); reported and (0, 1000) when it is not a rate."""
    if not isinstance(value, ast.Rate):
        ctx.error(
            "TQ0801",
            "a rate is a count per period, like `10/s`, `600/m`, `5/h` or `100/10s`",
            value.span,
            help=f"write `{_shown(value)}/s` for that many a second"
            if isinstance(value, ast.Literal) and value.kind == "int"
            else None,
        )
        return 0, 1000
    period_ms = _period(ctx, value.per)
    count = value.count
    if count.kind == "float":
        ctx.error(
            "TQ0801",
            f"a rate counts whole jobs: `{count.text}` is not a whole number",
            count.span,
            help=_whole_rate(float(str(count.value)), period_ms),
        )
        return 0, period_ms
    rate = _bounded(ctx, int(str(count.value)), count.span, "a rate")
    if rate == 0:
        ctx.error(
            "TQ0802",
            f"a rate of `{_shown(count)}/{_shown(value.per)}` can never admit a job",
            count.span,
            label="the bucket never refills",
            help="to stop a flow's jobs for a while, pause its schedules (`tqc pause FLOW`)",
        )
    return rate, period_ms


def _period(ctx: Context, per: ast.Literal) -> int:
    if per.kind == "duration":
        period = int(str(per.value))
        if period <= 0:
            ctx.error("TQ0801", "a rate's period must be longer than 0", per.span)
            return 1000
        return period
    unit = str(per.value)
    if unit in DURATION_UNITS_MS:
        return DURATION_UNITS_MS[unit]
    spelled = UNIT_SPELLINGS.get(unit.lower())
    ctx.error(
        "TQ0801",
        f"unknown unit `{unit}` in a rate",
        per.span,
        help=f"write `/{spelled}`"
        if spelled
        else did_you_mean(unit, DURATION_UNITS_MS)
        or "a rate is per `s`, `m`, `h` or `d`, or per a duration like `10s`",
    )
    return 1000


def _whole_rate(rate: float, period_ms: int) -> str | None:
    """The same rate as a whole number over a longer period (0.5/s -> 30/m), if there is one."""
    for unit in ("s", "m", "h", "d"):
        size = DURATION_UNITS_MS[unit]
        if size < period_ms:
            continue
        per_unit = rate * size / period_ms
        if per_unit >= 1 and abs(per_unit - round(per_unit)) < 1e-9:
            return f"write `{round(per_unit)}/{unit}` for the same rate"
    return None


def _shown(value: ast.Literal) -> str:
    return value.text or str(value.value)


def _concurrency(ctx: Context, call: ast.Call, qualified: str) -> LimiterPlan:
    positional = [a for a in call.args if a.name is None]
    limit = 0
    if len(positional) != 1:
        ctx.error(
            "TQ0801",
            "`concurrency(…)` takes one number: how many jobs may run at once, like `concurrency(5)`",
            call.span,
        )
    else:
        value = positional[0].value
        if isinstance(value, ast.Rate):
            ctx.error(
                "TQ0801",
                "`concurrency(…)` counts jobs running at once, not a rate",
                value.span,
                help=f"for a rate write `rate({_shown(value.count)}/{_shown(value.per)})`",
            )
        else:
            limit = _count(ctx, value, "`concurrency(…)`") or 0
            if limit == 0 and isinstance(value, ast.Literal) and value.kind == "int":
                ctx.error(
                    "TQ0802",
                    "`concurrency(0)` can never admit a job",
                    value.span,
                    label="no job would ever start",
                    help="to stop a flow's jobs for a while, pause its schedules (`tqc pause FLOW`)",
                )
    for arg in call.args:
        if arg.name is not None:
            ctx.error("TQ0801", f"`concurrency(…)` has no option `{arg.name}`", arg.name_span)
    return LimiterPlan(name=qualified, kind="concurrency", limit=limit)


def _count(ctx: Context, value: ast.Expr, what: str) -> int | None:
    if isinstance(value, ast.Literal) and value.kind == "int":
        return _bounded(ctx, int(str(value.value)), value.span, what)
    ctx.error("TQ0801", f"{what} takes a whole number, like 5", value.span)
    return None


def _bounded(ctx: Context, number: int, span: Span, what: str) -> int:
    if number > MAX_COUNT:
        ctx.error("TQ0801", f"{what} is at most {MAX_COUNT:,}, got {number:,}", span)
        return MAX_COUNT
    return number


# ---- a job's limits and fairness ---------------------------------------------------------------


@dataclass
class FlowControl:
    """What a job's `limit` and `fair` settings lower to, and the limiters they name."""

    limits: list[LimitUse] = field(default_factory=list)
    fair: FairPlan | None = None
    limiters: dict[str, LimiterPlan] = field(default_factory=dict)  # by qualified name


def lower_default_fair(ctx: Context, flow: ast.Flow, env: TypeEnv) -> FairPlan | None:
    """`fair by …` in `defaults`: the same for every job, so it may read only `params` and `run`."""
    fairs = [s for s in flow.defaults if s.kind == "fair" and isinstance(s.value, ast.Fair)]
    _at_most_one(ctx, fairs, "`defaults`")
    if not fairs:
        return None
    fair = fairs[0].value
    assert isinstance(fair, ast.Fair)
    scope = Scope(flow.name, env.param_names, env.job_names)
    return _fair(ctx, None, fair, scope, env)


def lower_flow_control(
    ctx: Context,
    job: ast.Job,
    scope: Scope,
    env: TypeEnv,
    default_fair: FairPlan | None,
) -> FlowControl:
    """A job's `limit` and `fair` settings. Keys may read upstream results (the job then waits for
    them, as for data it reads), never the job's own."""
    result = FlowControl(fair=default_fair)
    first_use: dict[str, Span] = {}
    for setting in job.settings:
        value = setting.value
        if setting.kind == "limit" and isinstance(value, ast.Limit):
            plan = resolve_limiter(ctx, value)
            by = None
            if value.by is not None:
                by = _before_start(ctx, job, value.by, scope, env, "limit key")
            if plan is None:
                continue
            if plan.name in first_use:
                ctx.error(
                    "TQ0803",
                    f"job `{job.name}` uses limiter `{value.limiter}` twice",
                    value.span,
                    labels=(Label(first_use[plan.name], "first used here"),),
                    help="a job takes one slot of each limiter; to limit by two keys, declare two limiters",
                )
                continue
            first_use[plan.name] = value.span
            result.limiters[plan.name] = plan
            result.limits.append(LimitUse(limiter=plan.name, by=by))
    fairs = [s for s in job.settings if s.kind == "fair" and isinstance(s.value, ast.Fair)]
    _at_most_one(ctx, fairs, f"job `{job.name}`")
    if fairs:
        fair = fairs[0].value
        assert isinstance(fair, ast.Fair)
        result.fair = _fair(ctx, job, fair, scope, env)
    return result


def _fair(ctx: Context, job: ast.Job | None, fair: ast.Fair, scope: Scope, env: TypeEnv) -> FairPlan:
    key = _before_start(ctx, job, fair.key, scope, env, "fairness key")
    weight = None
    if fair.weight is not None:
        weight = _before_start(ctx, job, fair.weight, scope, env, "fairness weight")
    return FairPlan(key=key, weight=weight)


def resolve_limiter(ctx: Context, limit: ast.Limit) -> LimiterPlan | None:
    name = limit.limiter
    if name in ctx.limiter_plans:
        return ctx.limiter_plans[name]
    if name in ctx.imported_limiters:
        return ctx.imported_limiters[name]
    alias = name.partition(".")[0]
    if name in ctx.unresolved or (alias != name and alias in ctx.unresolved):
        return None  # declared by a line with a syntax error, or from a file that failed: reported there
    imports = {i.alias for i in ctx.module.imports}
    if "." in name and alias not in imports:
        help_text = did_you_mean(name, [*ctx.limiter_plans, *ctx.imported_limiters]) or (
            f'`{alias}` is not an imported file: `import "{alias}.tqflow" as {alias}` binds its limiters'
        )
    else:
        help_text = did_you_mean(name, [*ctx.limiter_plans, *ctx.imported_limiters]) or (
            f"declare it at the top level: `limiter {name.rpartition('.')[2]} = rate(10/s)`"
        )
    ctx.error("TQ0211", f"unknown limiter `{name}`", limit.limiter_span, help=help_text)
    return None


def _at_most_one(ctx: Context, fairs: list[ast.Setting], where: str) -> None:
    for extra in fairs[1:]:
        ctx.error(
            "TQ0502",
            f"{where} has more than one `fair`",
            extra.span,
            labels=(Label(fairs[0].span, "the first one"),),
            help='jobs take turns by one key; combine keys with an f-string: `fair by f"{a}-{b}"`',
        )


def _before_start(
    ctx: Context, job: ast.Job | None, expr: ast.Expr, scope: Scope, env: TypeEnv, what: str
) -> ExprTree:
    """Lower and type-check a key or weight, which must be known before the job starts. It is lowered
    in a scope of its own, so that reading the job's own result is one clear error (not a cycle and a
    type error); then what it reads joins the job's reads (the job waits for those upstream jobs, as for
    data it reads). `job` is None in `defaults`, which applies to every job: there it may read no job's
    result at all."""
    own = Scope(scope.flow, scope.params, scope.jobs, set(scope.variables))
    tree = lower(ctx, expr, own)
    code = "TQ0805" if what == "fairness weight" else "TQ0804"
    if job is None and own.reads:
        upstream, span = next(iter(own.reads.items()))
        ctx.error(
            code,
            f"the {what} in `defaults` reads `{upstream}.out`",
            span,
            label="a job's result",
            notes=("`defaults` applies to every job, this upstream job included",),
            help="read only `params` and `run` here, or put this `fair` on the jobs that come after it",
        )
        return tree
    if job is not None and job.name in own.reads:
        ctx.error(
            code,
            f"the {what} of job `{job.name}` reads its own result",
            own.reads.pop(job.name),
            label="known only after the job ran",
            help="it must be known before the job starts: build it from `params`, `run` or an upstream "
            "job's result",
        )
        return tree
    for upstream, span in own.reads.items():
        scope.reads.setdefault(upstream, span)
    if what == "fairness weight":
        _check_weight(ctx, expr, env)
    else:
        _check_key_type(ctx, expr, env, what)
    if own.reads:
        _check_late_form(ctx, expr, what)
    return tree


# What the runtime can finish when the job is ready (lua/flow_keys.lua): the parts of a key that do not
# read an upstream result are evaluated when the run starts, the rest with these.
LATE_FORMS = (ast.Name, ast.Attr, ast.Index, ast.FString, ast.Literal)


def _check_late_form(ctx: Context, expr: ast.Expr, what: str) -> None:
    """A key or weight read from an upstream result is built from fields, indexes, f-strings and `+`."""
    weight = what == "fairness weight"
    for node in _walk(expr):
        plus = isinstance(node, ast.BinOp) and node.op == "+"
        if not plus and not isinstance(node, LATE_FORMS):
            made_of = "fields, indexes and `+`" if weight else "fields, indexes, f-strings and `+`"
            ctx.error(
                "TQ0805" if weight else "TQ0804",
                f"a {what} that reads an upstream result is made of {made_of} only",
                node.span,
                label="not one of those",
                help="compute it in the upstream task"
                if weight
                else 'compute the key in the upstream task, or use an f-string like `f"{a.out.region}"`',
            )
            return


def _walk(expr: ast.Expr) -> list[ast.Expr]:
    children: list[ast.Expr] = []
    match expr:
        case ast.Attr(value=value):
            children = [value]
        case ast.Index(value=value, index=index):
            children = [value, index]
        case ast.BinOp(left=left, right=right):
            children = [left, right]
        case ast.FString(parts=parts):
            children = [p for p in parts if isinstance(p, ast.Expr)]
    return [expr, *(n for c in children for n in _walk(c))]


def _check_key_type(ctx: Context, expr: ast.Expr, env: TypeEnv, what: str) -> None:
    ty = infer(ctx, expr, env)
    if _fits(ty, KEY_TYPES):
        return
    ctx.error(
        "TQ0804",
        f"a {what} is a string or an int, but this is {ty}",
        expr.span,
        label=f"this is {ty}",
        help="give the parameter a default, or a fallback value"
        if ty.optional or ty.name == "None"
        else 'make it a string with an f-string, like `f"{params.day}"`',
    )


def _check_weight(ctx: Context, expr: ast.Expr, env: TypeEnv) -> None:
    """A constant weight must be greater than 0; another expression must be a number (the runtime
    reads its value)."""
    if isinstance(expr, ast.Literal):
        number = expr.value if expr.kind in ("int", "float") else None
        if not isinstance(number, int | float) or number <= 0:
            ctx.error(
                "TQ0805",
                f"a fairness weight is a number greater than 0, got `{_shown(expr)}`",
                expr.span,
                help="weights share the turns: `weight 3` gets three turns for every one of `weight 1`",
            )
        return
    ty = infer(ctx, expr, env)
    if not _fits(ty, WEIGHT_TYPES):
        ctx.error(
            "TQ0805",
            f"a fairness weight is a number, but this is {ty}",
            expr.span,
            label=f"this is {ty}",
            help="give the parameter a default" if ty.optional else "use an Int or Float parameter",
        )


def _fits(ty: Ty, names: tuple[str, ...]) -> bool:
    """Whether a value of `ty` is one of `names` (or may be, when the compiler cannot tell)."""
    if ty.name == "None":
        return False
    if ty.optional and ty.known:
        return False
    plain = ty.required()
    if plain.base is not None:  # a NewType or a Literal: its base type
        plain = plain.base.required()
    return not plain.known or plain.name in names
