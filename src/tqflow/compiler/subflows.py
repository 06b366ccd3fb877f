"""Pass helpers: sub-flow jobs (`job NAME = flow OTHER(p=…)`, OTHER in this file or `x.OTHER` imported).

A sub-flow job's `.out` is an object whose fields are OTHER's outputs, typed as OTHER infers them; its
arguments are OTHER's parameters (unknown, missing and mistyped ones are reported as a task call's are);
a flow reaching itself through sub-flows is a cycle (TQ0401). The child flow is deployed with the plan:
an imported one (and the flows it starts in turn) under `x.OTHER`, without its schedules.
"""

from __future__ import annotations

from tqflow.compiler.context import Context
from tqflow.compiler.typecheck import TypeEnv, check_value
from tqflow.compiler.types import FlowTypes, Ty
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Label, did_you_mean
from tqflow.dsl.source import Span
from tqflow.plan.model import SUBFLOW_TASK, FlowPlan, SubflowPlan, TaskRef

SUBFLOW_SETTINGS = ("retry", "after")  # what a sub-flow job may set; the child's jobs carry their own


def outputs_type(ref: str) -> Ty:
    """The type of a sub-flow job's `.out`: a record of the flow's outputs (a name no class can have)."""
    return Ty(f"outputs of flow {ref}")


def subflow_task(ref: str) -> TaskRef:
    """The TaskRef a sub-flow job carries: no task runs; the graph shows `flow OTHER`."""
    return TaskRef(
        name=SUBFLOW_TASK, module="tqflow.runtime.subflows", function=f"flow {ref}", signature_hash=""
    )


def check_subflow_settings(ctx: Context, job: ast.Job) -> tuple[ast.Setting, ...]:
    """The job's own settings that apply to a sub-flow job; the others are reported (TQ0502)."""
    kept = []
    for setting in job.settings:
        if setting.kind in SUBFLOW_SETTINGS:
            kept.append(setting)
            continue
        ctx.error(
            "TQ0502",
            f"`{setting.kind}` does not apply to sub-flow job `{job.name}` (it runs a flow, not a task)",
            setting.span,
            help="a sub-flow job takes `retry …` (each try is a new child run) and `after COND`; "
            "set the rest on the child flow's jobs",
        )
    return tuple(kept)


def unknown_flow(ctx: Context, call: ast.Call) -> None:
    local = [f.name for f in ctx.module.flows]
    alias = call.func.partition(".")[0] if "." in call.func else None
    if alias is not None and alias not in {i.alias for i in ctx.module.imports}:
        hint = f'import the file first: `import "other.tqflow" as {alias}`'
    else:
        hint = did_you_mean(call.func, [*local, *ctx.imported_flows]) or (
            f"flows of this file: {', '.join(local)}" if local else "no flow of that name"
        )
    ctx.error("TQ0212", f"unknown flow `{call.func}`", _callee(call), label="no such flow", help=hint)


def check_subflow_args(ctx: Context, job: ast.Job, types: FlowTypes, env: TypeEnv) -> None:
    """The job's arguments against the flow's parameters: TQ0303 positional, TQ0301 unknown or twice,
    TQ0302 missing, TQ0304 mistyped."""
    call = job.call
    takes = ", ".join(f"{n}: {t}" for n, t in types.params.items()) or "no parameters"
    given: set[str] = set()
    for arg in call.args:
        if arg.name is None:
            ctx.error(
                "TQ0303",
                f"positional argument to flow `{call.func}`",
                arg.span,
                help="pass a flow's parameters by name, like `day=…`",
            )
            continue
        if arg.name in given:
            ctx.error("TQ0301", f"argument `{arg.name}` is passed twice", arg.name_span)
            continue
        given.add(arg.name)
        if arg.name not in types.params:
            ctx.error(
                "TQ0301",
                f"flow `{call.func}` has no parameter `{arg.name}`",
                arg.name_span,
                label="unknown parameter",
                notes=(f"`{call.func}` takes: {takes}",),
                help=did_you_mean(arg.name, [n for n in types.params if n not in given]),
            )
            continue
        target = types.params[arg.name]
        check_value(
            ctx,
            arg.value,
            target,
            env,
            f"parameter `{arg.name}`",
            notes=(f"declared as `{arg.name}: {target}` in flow `{call.func}`",),
        )
    for name in sorted(types.required - given):
        ctx.error(
            "TQ0302",
            f"missing argument `{name}` for flow `{call.func}`",
            _callee(call),
            notes=(f"`{call.func}` takes: {takes}", f"`{name}` has no default"),
        )


def check_subflow_cycles(ctx: Context) -> set[str]:
    """TQ0401 for each flow of this file that reaches itself through sub-flow jobs (once per cycle);
    returns the flows on a cycle."""
    calls: dict[str, list[ast.Job]] = {}
    for flow in ctx.module.flows:
        calls.setdefault(flow.name, []).extend(j for j in flow.jobs if j.subflow and "." not in j.call.func)
    on_cycle: set[str] = set()
    reported: set[frozenset[str]] = set()
    explored: set[str] = set()

    def visit(name: str, path: list[tuple[str, ast.Job]]) -> None:
        for job in calls.get(name, []):
            target = job.call.func
            if target not in calls or target in explored:
                continue  # an unknown flow is reported where it is called
            step = [*path, (name, job)]
            flows = [f for f, _job in step]
            if target in flows:
                cycle = step[flows.index(target) :]
                members = frozenset(f for f, _job in cycle)
                on_cycle.update(members)
                if members not in reported:
                    reported.add(members)
                    _report_cycle(ctx, cycle)
                continue
            visit(target, step)
        explored.add(name)

    for flow in ctx.module.flows:
        if flow.name not in explored:
            visit(flow.name, [])
    return on_cycle


def _report_cycle(ctx: Context, steps: list[tuple[str, ast.Job]]) -> None:
    """`steps`: (flow, its job that starts the next flow), the last one starting the first."""
    path = " -> ".join([*(f for f, _job in steps), steps[0][0]])
    first_flow, first_job = steps[0]
    labels = tuple(
        Label(_callee(job.call), f"`{flow}` starts `{job.call.func}` here") for flow, job in steps[1:]
    )
    ctx.error(
        "TQ0401",
        f"sub-flow cycle: {path}",
        _callee(first_job.call),
        label=f"`{first_flow}` starts `{first_job.call.func}` here",
        labels=labels,
        help="a flow cannot run itself, directly or through other flows: remove one of these sub-flow jobs",
    )


def bring_imported(ctx: Context, ref: str) -> SubflowPlan | None:
    """The plan of imported flow `ref` (`x.OTHER`) joins this plan under that name, schedules dropped, and
    so do the flows it starts in turn (renamed `x.…` with it). Returns the job's SubflowPlan."""
    plan = ctx.imported_flows.get(ref)
    if plan is None:
        return None
    alias = ref.partition(".")[0]
    if ref not in ctx.flow_plans:
        jobs = {}
        for name, job in plan.jobs.items():
            if job.subflow is not None:
                inner = bring_imported(ctx, f"{alias}.{job.subflow.flow}")
                job = job.model_copy(update={"subflow": inner or job.subflow})
            jobs[name] = job
        renamed: FlowPlan = plan.model_copy(update={"name": ref, "triggers": [], "jobs": jobs})
        ctx.flow_plans[ref] = renamed
    return SubflowPlan(flow=ref, plan_id=ctx.flow_plans[ref].id)


def _callee(call: ast.Call) -> Span:
    span = call.span
    length = len(call.func)
    return Span(span.start, span.start + length, span.line, span.column, span.line, span.column + length)
