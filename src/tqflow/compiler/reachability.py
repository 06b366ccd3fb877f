"""Pass: find jobs that can never run (an `after` condition that cannot hold).

Each job ends in one of three states: succeeded, failed, skipped. A job with no conditions can only
succeed or fail; a job that can never run is always skipped. Walking the jobs in topological order,
every combination of end states of the jobs a condition names is tried (data dependencies require
`succeeded`); when none satisfies the condition the job can never run.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from tqflow.compiler.context import Context
from tqflow.plan import FlowPlan, JobPlan

ENDS = ("succeeded", "failed", "skipped")
MAX_NAMED = 9  # 3**9 combinations at most; larger conditions are not checked


def check_reachability(ctx: Context) -> None:
    for flow in ctx.module.flows:
        plan = ctx.flow_plans.get(flow.name)
        if plan is not None:
            _check_flow(ctx, flow.name, plan, {j.name: j for j in flow.jobs})


def _check_flow(ctx: Context, flow: str, plan: FlowPlan, nodes: Mapping[str, Any]) -> None:
    possible: dict[str, tuple[str, ...]] = {}
    for name in plan.order:
        job = plan.jobs[name]
        if _can_run(job, possible):
            may_skip = bool(job.waits_for or job.when is not None)
            possible[name] = ENDS if may_skip else ("succeeded", "failed")
            continue
        possible[name] = ("skipped",)
        upstream_never_runs = any(possible.get(u) == ("skipped",) for u in job.waits_for)
        if not upstream_never_runs:  # report the cause, not every job downstream of it
            node = nodes[name]
            ctx.error(
                "TQ0402",
                f"job `{name}` can never run",
                node.name_span,
                label="its conditions can never all hold",
                notes=_why(job, possible),
                help="check the `after` condition: a job ends exactly one of succeeded, failed or skipped",
            )


def _can_run(job: JobPlan, possible: Mapping[str, tuple[str, ...]]) -> bool:
    named = sorted(set(job.waits_for))
    if len(named) > MAX_NAMED:
        return True
    domains = [possible.get(n, ENDS) for n in named]
    for ends in itertools.product(*domains):
        state = dict(zip(named, ends, strict=True))
        if all(state[d] == "succeeded" for d in job.data_deps) and (
            job.after is None or _holds(job.after, state)
        ):
            return True
    return False


def _holds(tree: Mapping[str, Any], state: Mapping[str, str]) -> bool:
    ((kind, value),) = tree.items()
    if kind == "status":
        job, status = value
        end = state.get(str(job), "skipped")
        return bool(end == status or status == "done")
    if kind in ("all", "and"):
        return all(_holds(v, state) for v in value)
    if kind in ("any", "or"):
        return any(_holds(v, state) for v in value)
    if kind == "not":
        return not _holds(value, state)
    return bool(value) if kind == "lit" else True


def _why(job: JobPlan, possible: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    notes = []
    for upstream in sorted(set(job.waits_for)):
        ends = possible.get(upstream, ENDS)
        if ends != ENDS:
            notes.append(f"`{upstream}` can only end {' or '.join(ends)}")
    if job.data_deps:
        notes.append(f"reading {', '.join(f'`{d}.out`' for d in job.data_deps)} requires it to succeed")
    return tuple(notes)
