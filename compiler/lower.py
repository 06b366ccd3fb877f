"""Pass: check each flow's jobs and lower the flow to a `FlowPlan`."""

from __future__ import annotations

from typing import Any

from tqflow.compiler.calls import check_arguments, resolve_task
from tqflow.compiler.context import Context
from tqflow.compiler.expressions import Scope, lower, lower_condition
from tqflow.compiler.graph import check_cycles, topological_order
from tqflow.compiler.plan import (
    DEFAULT_QUEUE,
    PRIORITIES,
    FlowPlan,
    JobPlan,
    OutputPlan,
    ParamPlan,
    RetryPlan,
    TaskRef,
)
from tqflow.compiler.retry import lower_retry
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import did_you_mean
from tqflow.dsl.source import Span


def lower_flows(ctx: Context) -> dict[str, FlowPlan]:
    plans: dict[str, FlowPlan] = {}
    for flow in ctx.module.flows:
        plan = lower_flow(ctx, flow)
        if plan is not None and flow.name not in plans:
            plans[flow.name] = plan
    return plans


def lower_flow(ctx: Context, flow: ast.Flow) -> FlowPlan | None:
    queue = flow.queue or DEFAULT_QUEUE
    job_names = {j.name for j in flow.jobs}
    params = {p.name for p in flow.params}
    param_plans = [
        ParamPlan(
            name=p.name,
            type=str(p.type),
            default=lower(ctx, p.default, Scope(flow.name, params, set())) if p.default else None,
        )
        for p in flow.params
    ]
    defaults = _settings(ctx, flow.defaults, "defaults", flow.name, job_names, params, None)
    jobs: dict[str, JobPlan] = {}
    waits_for: dict[str, set[str]] = {}
    modules: set[str] = set()
    for job in flow.jobs:
        scope = Scope(flow.name, params, job_names)
        fan_out = None
        if job.fan_out is not None:
            fan_out = {"var": job.fan_out.var, "over": lower(ctx, job.fan_out.over, scope)}
            scope.variables.add(job.fan_out.var)
        signature = resolve_task(ctx, job.call)
        if signature is not None:
            check_arguments(ctx, job.call, signature, job.fan_out.var if job.fan_out else None)
            modules.add(signature.module)
        args = {a.name: lower(ctx, a.value, scope) for a in job.call.args if a.name is not None}
        settings = {**defaults, **_settings(ctx, job.settings, job.name, flow.name, job_names, params, scope)}
        after_waits: dict[str, Span] = settings.pop("_after_waits", {})
        for upstream, span in [*scope.reads.items(), *after_waits.items()]:
            ctx.dep_spans.setdefault((flow.name, job.name, upstream), span)
        waits_for[job.name] = set(scope.reads) | set(after_waits)
        if signature is None:
            continue
        jobs[job.name] = JobPlan(
            name=job.name,
            task=TaskRef(
                name=signature.name,
                module=signature.module,
                function=signature.function,
                signature_hash=signature.hash,
            ),
            args=args,
            queue=settings.get("queue", queue),
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
        )
    outputs = [
        OutputPlan(name=o.name, value=lower(ctx, o.value, Scope(flow.name, params, job_names)))
        for o in flow.outputs
    ]
    if not check_cycles(ctx, flow, waits_for) or len(jobs) != len(flow.jobs):
        return None
    order = topological_order(waits_for, [j.name for j in flow.jobs])
    return FlowPlan(
        name=flow.name,
        queue=queue,
        params=param_plans,
        jobs=jobs,
        order=order,
        outputs=outputs,
        modules=sorted(modules),
    )


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
            result["priority"] = value.id
        elif setting.kind == "retry" and isinstance(value, ast.RetrySpec):
            result["retry"] = lower_retry(ctx, value)
        elif setting.kind in ("timeout", "deadline", "delay") and isinstance(value, ast.Literal):
            result[setting.kind] = int(value.value)  # type: ignore[call-overload]
        elif setting.kind == "queue" and isinstance(value, str):
            if not value:
                ctx.error("TQ0502", "a queue name cannot be empty", setting.span)
            result["queue"] = value
        elif setting.kind in ("after", "when") and isinstance(value, ast.Expr):
            if scope is None:
                ctx.error("TQ0502", f"`{setting.kind}` belongs on a job, not in `defaults`", setting.span)
                continue
            if setting.kind == "after":
                waits: dict[str, Span] = {}
                result["after"] = lower_condition(ctx, value, Scope(flow, params, jobs), waits)
                if owner in waits:
                    ctx.error("TQ0401", f"job `{owner}` waits for itself", waits[owner])
                result["_after_waits"] = waits
            else:
                result["when"] = lower(ctx, value, scope)
    return result
