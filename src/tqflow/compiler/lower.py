"""Pass: check each flow's jobs and lower the flow to a `FlowPlan` (kept in `ctx.flow_plans`)."""

from __future__ import annotations

from typing import Any

from tqflow.compiler.calls import check_arguments, resolve_task
from tqflow.compiler.context import Context
from tqflow.compiler.expressions import Scope, lower, lower_condition
from tqflow.compiler.graph import check_cycles, stable_order, topological_order
from tqflow.compiler.limits import lower_default_fair, lower_flow_control
from tqflow.compiler.python_tasks import ModuleInfo, TaskSignature
from tqflow.compiler.pytypes import PyTypes
from tqflow.compiler.retry import lower_retry
from tqflow.compiler.schedules import lower_schedules
from tqflow.compiler.signals import check_signal_settings, register_imported_classes, signal_plan, signal_task
from tqflow.compiler.subflows import (
    bring_imported,
    check_subflow_args,
    check_subflow_cycles,
    check_subflow_settings,
    outputs_type,
    subflow_task,
    unknown_flow,
)
from tqflow.compiler.typecheck import TypeEnv, check_value, infer
from tqflow.compiler.types import ANY, DECLARABLE, FlowTypes, Ty, from_declared, list_of
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Label, did_you_mean
from tqflow.dsl.source import Span
from tqflow.plan import (
    DEFAULT_QUEUE,
    PRIORITIES,
    FlowPlan,
    JobPlan,
    OutputPlan,
    ParamPlan,
    RetryPlan,
    TaskRef,
    UniquePlan,
)
from tqflow.plan.durations import format_duration
from tqflow.plan.model import FairPlan, LimiterPlan, SubflowPlan

CONFLICTS = ("skip", "reject", "replace")
UNIQUE_OPTIONS = ("key", "within", "conflict")


def lower_flows(ctx: Context) -> None:
    ctx.subflow_cycles = check_subflow_cycles(ctx)
    for flow in _children_first(ctx.module.flows):
        plan = lower_flow(ctx, flow)
        if plan is not None and flow.name not in ctx.flow_plans:
            ctx.flow_plans[flow.name] = plan


def _children_first(flows: tuple[ast.Flow, ...]) -> list[ast.Flow]:
    """The flows in declaration order, except that a flow another one starts as a sub-flow comes first
    (its plan id and types are the caller's to know); with a cycle (TQ0401), declaration order."""
    names = {f.name for f in flows}
    starts = {f.name: {j.call.func for j in f.jobs if j.subflow and j.call.func in names} for f in flows}
    order = stable_order(starts, [f.name for f in flows])
    by_name = {f.name: f for f in flows}
    return [by_name[n] for n in order] if order is not None and len(order) == len(by_name) else list(flows)


def lower_flow(ctx: Context, flow: ast.Flow) -> FlowPlan | None:
    queue = flow.queue or DEFAULT_QUEUE
    job_names = {j.name for j in flow.jobs}
    params = {p.name for p in flow.params}
    signatures = _signatures(ctx, flow)
    env = _type_env(ctx, flow, signatures)
    param_plans = _params(ctx, flow, params, env)
    defaults = _settings(ctx, flow.defaults, "defaults", flow.name, job_names, params, None)
    default_fair = lower_default_fair(ctx, flow, env)
    jobs: dict[str, JobPlan] = {}
    waits_for: dict[str, set[str]] = {}
    limiters: dict[str, LimiterPlan] = {}
    for job in flow.jobs:
        plan = _lower_job(
            ctx, flow, job, signatures.get(job.name), defaults, env, waits_for, default_fair, limiters
        )
        if plan is not None:
            jobs[job.name] = plan
    outputs = [
        OutputPlan(name=o.name, value=lower(ctx, o.value, Scope(flow.name, params, job_names)))
        for o in flow.outputs
    ]
    output_types = {}
    for output in flow.outputs:  # reports fields read from values that have none, bad arithmetic
        output_types[output.name] = infer(ctx, output.value, env)
    required = frozenset(p.name for p in flow.params if p.default is None)
    ctx.flow_types.setdefault(flow.name, FlowTypes(dict(env.params), required, output_types))
    triggers = lower_schedules(ctx, flow, env)
    if not check_cycles(ctx, flow, waits_for) or len(jobs) != len(flow.jobs):
        return None
    return FlowPlan(
        name=flow.name,
        queue=queue,
        params=param_plans,
        jobs=jobs,
        order=topological_order(waits_for, [j.name for j in flow.jobs]),
        outputs=outputs,
        triggers=triggers,
        modules=sorted({s.module for s in signatures.values()}),
        limiters=limiters,
    )


def _signatures(ctx: Context, flow: ast.Flow) -> dict[str, TaskSignature]:
    result = {}
    for job in flow.jobs:
        if job.signal is not None or job.subflow:
            continue  # runs no task
        signature = resolve_task(ctx, job.call)
        if signature is not None:
            result[job.name] = signature
            ctx.signatures[(flow.name, job.name)] = signature
    return result


def _type_env(ctx: Context, flow: ast.Flow, signatures: dict[str, TaskSignature]) -> TypeEnv:
    env = TypeEnv()
    classes = {n for m in ctx.modules.values() for n in m.names if n[:1].isupper()}
    classes |= {n for n in ctx.imported_names if n[:1].isupper()}
    for param in flow.params:
        declared = _declared_type(param.type, classes)
        if declared is None:
            ctx.error(
                "TQ0209",
                f"unknown type `{param.type.name}`",
                param.type.span,
                help=did_you_mean(param.type.name, [*DECLARABLE, "list", "dict", *classes])
                or f"types are {', '.join(DECLARABLE)}, list[T], dict[Str, T], and classes of task modules",
            )
        env.params[param.name] = declared or ANY
    types = pytypes(ctx)
    records: dict[str, dict[str, Ty]] = {}  # a sub-flow job's `.out`: its flow's outputs
    env.fields = lambda name: records[name] if name in records else types.fields(name)
    for job in flow.jobs:
        if job.subflow:
            called = ctx.flow_types.get(job.call.func)
            env.jobs[job.name] = outputs_type(job.call.func) if called is not None else ANY
            if called is not None:
                records[outputs_type(job.call.func).name] = called.outputs
            env.job_spans[job.name] = job.call.span
            continue
        if job.signal is not None:
            env.jobs[job.name] = _signal_type(ctx, job.signal, classes)
            env.job_spans[job.name] = job.signal.span
            continue
        signature = signatures.get(job.name)
        returns = types.annotation(_module_of(ctx, signature), signature.returns) if signature else ANY
        env.jobs[job.name] = list_of(returns) if job.fan_out else returns
        env.job_spans[job.name] = job.call.span
    env.param_names, env.job_names = set(env.params), set(env.jobs)
    return env


def _signal_type(ctx: Context, signal: ast.SignalWait, classes: set[str]) -> Ty:
    """The payload type of a signal job: a declared type as a parameter's (TQ0209 when unknown)."""
    declared = _declared_type(signal.type, classes)
    if declared is None:
        ctx.error(
            "TQ0209",
            f"unknown signal type `{signal.type.name}`",
            signal.type.span,
            help=did_you_mean(signal.type.name, [*DECLARABLE, "list", "dict", *classes])
            or f"types are {', '.join(DECLARABLE)}, list[T], dict[Str, T], and classes of task modules",
        )
        return ANY
    register_imported_classes(ctx, pytypes(ctx))
    return declared


def _declared_type(ref: ast.TypeRef, classes: set[str]) -> Ty | None:
    """A declared type; a class name counts only if a used module defines it."""
    names = [ref.name, *(a.name for a in ref.args)]
    builtin = {*DECLARABLE, "list", "dict", "List", "Dict"}
    if any(n not in builtin and n not in classes for n in names):
        return None
    return from_declared(ref)


def _params(ctx: Context, flow: ast.Flow, params: set[str], env: TypeEnv) -> list[ParamPlan]:
    plans = []
    for p in flow.params:
        default = None
        if p.default is not None:
            default = lower(ctx, p.default, Scope(flow.name, params, set()))
            check_value(ctx, p.default, env.params[p.name], env, f"parameter `{p.name}`")
        plans.append(ParamPlan(name=p.name, type=str(p.type), default=default))
    return plans


def _lower_job(
    ctx: Context,
    flow: ast.Flow,
    job: ast.Job,
    signature: TaskSignature | None,
    defaults: dict[str, Any],
    env: TypeEnv,
    waits_for: dict[str, set[str]],
    default_fair: FairPlan | None,
    limiters: dict[str, LimiterPlan],
) -> JobPlan | None:
    params, job_names = env.param_names, env.job_names
    if job.signal is not None:
        return _lower_signal_job(ctx, flow, job, env, waits_for)
    if job.subflow:
        return _lower_subflow_job(ctx, flow, job, env, waits_for)
    scope = Scope(flow.name, params, job_names)
    job_env = TypeEnv(env.params, env.jobs, env.job_spans, dict(env.variables), params, job_names, env.fields)
    fan_out = None
    if job.fan_out is not None:
        fan_out = {"var": job.fan_out.var, "over": lower(ctx, job.fan_out.over, scope)}
        scope.variables.add(job.fan_out.var)
        job_env.variables[job.fan_out.var] = _fan_out_element(ctx, job.fan_out, env)
    if signature is not None:
        check_arguments(ctx, job.call, signature, job.fan_out.var if job.fan_out else None)
        _check_argument_types(ctx, job.call, signature, job_env)
    args = {a.name: lower(ctx, a.value, scope) for a in job.call.args if a.name is not None}
    for setting in job.settings:
        if setting.kind == "when" and isinstance(setting.value, ast.Expr):
            infer(ctx, setting.value, job_env)
    settings = {**defaults, **_settings(ctx, job.settings, job.name, flow.name, job_names, params, scope)}
    control = lower_flow_control(ctx, job, scope, job_env, default_fair)  # keys read upstream: waits
    limiters.update(control.limiters)
    after_waits: dict[str, Span] = settings.pop("_after_waits", {})
    for upstream, span in [*scope.reads.items(), *after_waits.items()]:
        ctx.dep_spans.setdefault((flow.name, job.name, upstream), span)
    waits_for[job.name] = set(scope.reads) | set(after_waits)
    _check_deadline(ctx, job, settings)
    if signature is None:
        return None
    return JobPlan(
        name=job.name,
        task=TaskRef(
            name=signature.name,
            module=signature.module,
            function=signature.function,
            signature_hash=signature.hash,
        ),
        args=args,
        # the job's setting, the flow's `defaults`, the flow's `queue`, the task's own @task(queue=…)
        queue=settings.get("queue", flow.queue or _task_text(signature.options, "queue") or DEFAULT_QUEUE),
        priority=settings.get("priority", _task_priority(signature.options)),
        retry=settings.get("retry", RetryPlan()),
        timeout_ms=settings.get("timeout"),
        deadline_ms=settings.get("deadline"),
        delay_ms=settings.get("delay", 0),
        data_deps=sorted(scope.reads),
        after=settings.get("after"),
        waits_for=sorted(waits_for[job.name]),
        when=settings.get("when"),
        fan_out=fan_out,
        unique=settings.get("unique"),
        dead_letter=settings.get("dead_letter", _task_text(signature.options, "dead_letter")),
        limits=control.limits,
        fair=control.fair,
    )


def _lower_signal_job(
    ctx: Context, flow: ast.Flow, job: ast.Job, env: TypeEnv, waits_for: dict[str, set[str]]
) -> JobPlan | None:
    """A signal job: no task, no arguments; the flow's `defaults` do not apply (a task's timeout is not
    how long a person may take to answer)."""
    assert job.signal is not None
    own = check_signal_settings(ctx, job)
    scope = Scope(flow.name, env.param_names, env.job_names)
    settings = _settings(ctx, own, job.name, flow.name, env.job_names, env.param_names, scope)
    after_waits: dict[str, Span] = settings.pop("_after_waits", {})
    for upstream, span in after_waits.items():
        ctx.dep_spans.setdefault((flow.name, job.name, upstream), span)
    waits_for[job.name] = set(after_waits)
    return JobPlan(
        name=job.name,
        task=signal_task(job.signal.type),
        args={},
        queue=flow.queue or DEFAULT_QUEUE,
        after=settings.get("after"),
        waits_for=sorted(waits_for[job.name]),
        signal=signal_plan(pytypes(ctx), env.jobs[job.name], settings.get("timeout")),
    )


def _lower_subflow_job(
    ctx: Context, flow: ast.Flow, job: ast.Job, env: TypeEnv, waits_for: dict[str, set[str]]
) -> JobPlan | None:
    """A sub-flow job: its arguments are the child run's parameters; the flow's `defaults` do not apply
    (they are for tasks; the child's jobs have their own)."""
    ref = job.call.func
    own = check_subflow_settings(ctx, job)
    scope = Scope(flow.name, env.param_names, env.job_names)
    called = ctx.flow_types.get(ref)
    local = ref in {f.name for f in ctx.module.flows}
    if called is not None:
        check_subflow_args(ctx, job, called, env)
    elif not local and ref.partition(".")[0] not in ctx.unresolved:
        unknown_flow(ctx, job.call)
    args = {a.name: lower(ctx, a.value, scope) for a in job.call.args if a.name is not None}
    settings = _settings(ctx, own, job.name, flow.name, env.job_names, env.param_names, scope)
    after_waits: dict[str, Span] = settings.pop("_after_waits", {})
    for upstream, span in [*scope.reads.items(), *after_waits.items()]:
        ctx.dep_spans.setdefault((flow.name, job.name, upstream), span)
    waits_for[job.name] = set(scope.reads) | set(after_waits)
    if local:
        child = ctx.flow_plans.get(ref)
        subflow = SubflowPlan(flow=ref, plan_id=child.id if child is not None else "")
    else:
        subflow = bring_imported(ctx, ref) or SubflowPlan(flow=ref, plan_id="")
    return JobPlan(
        name=job.name,
        task=subflow_task(ref),
        args=args,
        queue=flow.queue or DEFAULT_QUEUE,
        retry=settings.get("retry", RetryPlan()),
        data_deps=sorted(scope.reads),
        after=settings.get("after"),
        waits_for=sorted(waits_for[job.name]),
        subflow=subflow,
    )


def _fan_out_element(ctx: Context, fan_out: ast.FanOut, env: TypeEnv) -> Ty:
    over = infer(ctx, fan_out.over, env)
    if over.known and over.name != "list":
        ctx.error(
            "TQ0306",
            f"a fan-out goes over a list, but this is {over}",
            fan_out.over.span,
            label=f"this is {over}",
            help="fan out over a job's list result (`for x in job.out`) or a list literal",
        )
    return over.element()


def pytypes(ctx: Context) -> PyTypes:
    if ctx.pytypes is None:
        ctx.pytypes = PyTypes([ctx.module.source.directory])
        for info in ctx.modules.values():
            ctx.pytypes.add(info)
            for name, cls in info.classes.items():
                ctx.pytypes.classes.setdefault(name, (info, cls))
    types: PyTypes = ctx.pytypes
    return types


def _module_of(ctx: Context, signature: TaskSignature) -> ModuleInfo:
    info = pytypes(ctx).modules.get(signature.module)
    assert info is not None  # the signature was read from it
    return info


def _check_argument_types(ctx: Context, call: ast.Call, signature: TaskSignature, env: TypeEnv) -> None:
    annotations = {p.name: p.annotation for p in signature.params}
    module = _module_of(ctx, signature)
    for arg in call.args:
        if arg.name is None or not annotations.get(arg.name):
            continue
        target = pytypes(ctx).annotation(module, annotations[arg.name])
        where = f"{signature.module}.{signature.function}({arg.name}: {annotations[arg.name]})"
        check_value(ctx, arg.value, target, env, f"argument `{arg.name}`", notes=(f"declared as {where}",))


def _check_deadline(ctx: Context, job: ast.Job, settings: dict[str, Any]) -> None:
    timeout, deadline = settings.get("timeout"), settings.get("deadline")
    if timeout is None or deadline is None or deadline >= timeout:
        return
    spans = {s.kind: s.span for s in job.settings}
    ctx.error(
        "TQ0504",
        f"job `{job.name}` has a deadline ({format_duration(deadline)}) shorter than one attempt's "
        f"timeout ({format_duration(timeout)})",
        spans.get("deadline", job.name_span),
        label="the deadline bounds all attempts together",
        labels=(Label(spans["timeout"], "one attempt may take this long"),) if "timeout" in spans else (),
        help="make the deadline at least the timeout, or lower the timeout",
    )


def _task_text(options: dict[str, object], name: str) -> str | None:
    """A @task(...) option given as a non-empty string literal (the worker applies the task's retry, timeout
    and dead-letter queue itself when the plan sets none: `Attempt.adopt` in runtime/worker/attempt.py)."""
    value = options.get(name)
    return value if isinstance(value, str) and value else None


def _task_priority(options: dict[str, object]) -> str:
    value = options.get("priority")
    return value if isinstance(value, str) and value in PRIORITIES else "normal"


def _settings(
    ctx: Context,
    settings: tuple[ast.Setting, ...],
    owner: str,
    flow: str,
    jobs: set[str],
    params: set[str],
    scope: Scope | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for setting in settings:
        value = setting.value
        if setting.kind == "priority" and isinstance(value, ast.Name):
            if value.id not in PRIORITIES:
                ctx.error(
                    "TQ0206",
                    f"unknown priority `{value.id}`",
                    value.span,
                    help=did_you_mean(value.id, PRIORITIES) or f"use one of {', '.join(PRIORITIES)}",
                )
            else:
                result["priority"] = value.id
        elif setting.kind == "retry" and isinstance(value, ast.RetrySpec | ast.RetryBlock):
            result["retry"] = lower_retry(ctx, value)
        elif setting.kind in ("timeout", "deadline", "delay") and isinstance(value, ast.Literal):
            result[setting.kind] = int(value.value)  # type: ignore[call-overload]
        elif setting.kind in ("queue", "dead_letter") and isinstance(value, str):
            if not value:
                ctx.error(
                    "TQ0502", f"a {setting.kind.replace('_', '-')} queue name cannot be empty", setting.span
                )
            result[setting.kind] = value
        elif setting.kind == "limit" and scope is None:
            ctx.error(
                "TQ0502",
                "`limit` belongs on a job, not in `defaults`",
                setting.span,
                help="write `limit NAME` in the block of each job that needs the limiter",
            )
        elif setting.kind == "unique" and isinstance(value, ast.Unique):
            if scope is None:
                ctx.error("TQ0502", "`unique` belongs on a job, not in `defaults`", setting.span)
                continue
            unique = _unique(ctx, value, scope)  # the job's scope: a key reading `x.out` waits for x
            if unique is not None:
                result["unique"] = unique
        elif setting.kind in ("after", "when") and isinstance(value, ast.Expr):
            if scope is None:
                ctx.error("TQ0502", f"`{setting.kind}` belongs on a job, not in `defaults`", setting.span)
                continue
            if setting.kind == "after":
                waits: dict[str, Span] = {}
                result["after"] = lower_condition(ctx, value, Scope(flow, params, jobs), waits)
                result["_after_waits"] = waits  # a job waiting for itself is reported as a cycle
            else:
                result["when"] = lower(ctx, value, scope)
    return result


def _unique(ctx: Context, spec: ast.Unique, scope: Scope) -> UniquePlan | None:
    options = {o.name: o for o in spec.options}
    for option in spec.options:
        if option.name not in UNIQUE_OPTIONS:
            ctx.error(
                "TQ0502",
                f"unknown `unique` option `{option.name}`",
                option.name_span,
                help=did_you_mean(option.name or "", UNIQUE_OPTIONS),
            )
    if "key" not in options or "within" not in options:
        ctx.error(
            "TQ0502",
            "`unique` needs a key and a window, like `unique key=params.day, within=24h`",
            spec.span,
        )
        return None
    key = options["key"].value
    check_deterministic(ctx, key)
    within = options["within"].value
    if not (isinstance(within, ast.Literal) and within.kind == "duration"):
        ctx.error("TQ0502", "`within` is a duration like `24h`", within.span)
        return None
    conflict = "skip"
    if "conflict" in options:
        value = options["conflict"].value
        conflict = value.id if isinstance(value, ast.Name) else ""
        if conflict not in CONFLICTS:
            ctx.error(
                "TQ0502",
                f"`conflict` is one of {', '.join(CONFLICTS)}",
                value.span,
                help=did_you_mean(conflict, CONFLICTS),
            )
            return None
    tree = lower(ctx, key, scope)
    return UniquePlan(key=tree, within_ms=int(str(within.value)), conflict=conflict)  # type: ignore[arg-type]


NON_DETERMINISTIC = {"id": "is new for every run", "time": "is the moment the run started"}


UNIQUE_KEY_HELP = "build the key from parameters or `run.date`, like `key=params.day`"


def check_deterministic(ctx: Context, key: ast.Expr, help: str = UNIQUE_KEY_HELP) -> None:
    for node in _walk(key):
        if (
            isinstance(node, ast.Attr)
            and isinstance(node.value, ast.Name)
            and node.value.id == "run"
            and node.attr in NON_DETERMINISTIC
        ):
            ctx.error(
                "TQ0701",
                f"uniqueness key uses `run.{node.attr}`, which {NON_DETERMINISTIC[node.attr]}",
                node.span,
                label="never the same twice",
                notes=("two runs only collide when their keys are equal, so this key never deduplicates",),
                help=help,
            )


def _walk(expr: ast.Expr) -> list[ast.Expr]:
    children: list[ast.Expr] = []
    match expr:
        case ast.Attr(value=v) | ast.Not(value=v):
            children = [v]
        case ast.Index(value=v, index=i):
            children = [v, i]
        case ast.BinOp(left=a, right=b):
            children = [a, b]
        case ast.BoolOp(values=vs) | ast.ListExpr(items=vs) | ast.FuncCall(args=vs):
            children = list(vs)
        case ast.DictExpr(items=pairs):
            children = [x for pair in pairs for x in pair]
        case ast.FString(parts=parts):
            children = [p for p in parts if isinstance(p, ast.Expr)]
    return [expr, *(n for c in children for n in _walk(c))]
