"""`tqc deploy` and `tqc run`: put plans in Redis and run them."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from pathlib import Path

import click

from tqflow.cli import exit_codes
from tqflow.cli.common import FILE, compile_or_exit, namespace_option, open_client, parse_params, redis_option
from tqflow.cli.run_command import run_flow
from tqflow.runtime.client import Client
from tqflow.runtime.deployments import FlowDiff, FlowNotDeployed
from tqflow.runtime.logging import configure_logging
from tqflow.runtime.runs import now_ms


@click.command()
@click.argument("files", nargs=-1, type=FILE)
@click.option("--yes", "-y", is_flag=True, help="Deploy without asking for confirmation.")
@click.option(
    "--rollback", "rollback_flow", metavar="FLOW", default=None, help="Return FLOW to its previous version."
)
@redis_option
@namespace_option
def deploy(
    files: tuple[Path, ...], yes: bool, rollback_flow: str | None, redis_url: str | None, namespace: str
) -> None:
    """Store the plans of FILES in Redis as new versions of their flows, after showing what changes.

    Runs in progress finish on the version they started with; workers pick up the new version
    without a restart. `--rollback FLOW` makes the version before the current one current again."""
    if rollback_flow is not None:
        if files:
            raise click.UsageError("give either FILES or --rollback FLOW, not both")
        asyncio.run(_rollback(rollback_flow, redis_url, namespace))
        return
    if not files:
        raise click.UsageError("give the .tqflow FILES to deploy (or --rollback FLOW)")
    plans = [compile_or_exit(f).plan for f in files]

    async def go() -> None:
        async with open_client(redis_url, namespace, embedded_ok=False) as client:
            diffs = [d for plan in plans if plan for d in await client.deployments.preview(plan, now_ms())]
            for diff in diffs:
                click.echo(render_diff(diff))
                click.echo(await runs_in_progress(client, diff), nl=False)
            if all(d.unchanged for d in diffs):
                click.echo("nothing to deploy: every flow is unchanged")
                return
            if not yes and not click.confirm("Deploy these changes?", default=False):
                raise click.Abort()  # exit code 1, nothing stored
            for plan in plans:
                assert plan is not None
                for deployed in await client.deploy(plan):
                    status = "deployed" if deployed.changed else "unchanged"
                    click.echo(
                        f"{status}: flow {deployed.flow} version {deployed.version} "
                        f"(plan {deployed.plan_id[:12]})"
                    )

    asyncio.run(go())


async def _rollback(flow: str, redis_url: str | None, namespace: str) -> None:
    async with open_client(redis_url, namespace, embedded_ok=False) as client:
        try:
            before, _ = await client.deployments.get(flow)
            deployed = await client.deployments.rollback(flow)
        except FlowNotDeployed as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(exit_codes.NOT_FOUND)
        click.echo(
            f"rolled back: flow {flow} version {before} -> {deployed.version} (plan {deployed.plan_id[:12]})"
        )


async def runs_in_progress(client: Client, diff: FlowDiff) -> str:
    """What the deploy means for the flow's runs in progress that have not reached a removed or changed
    job: they keep the version they started with (and a resumed one uses its own version too)."""
    if diff.current is None or diff.unchanged:
        return ""
    touched = sorted({*diff.jobs_removed, *(name for name in diff.changed if name != "(flow)")})
    pending = await client.lifecycle.not_reached(diff.flow, touched)
    lines = [
        f"  ! run {run_id} has not reached {', '.join(jobs)}: it keeps version {diff.current} "
        "(resuming it uses that version too)"
        for run_id, jobs in pending.items()
    ]
    return "".join(line + "\n" for line in lines)


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_diff(diff: FlowDiff) -> str:
    if diff.current is None:
        lines = [f"flow {diff.flow}: new flow"]
    elif diff.unchanged:
        return f"flow {diff.flow}: unchanged (version {diff.current})"
    else:
        lines = [f"flow {diff.flow}: version {diff.current} -> a new version"]
    lines += [f"  + job {name}" for name in diff.jobs_added]
    lines += [f"  - job {name}" for name in diff.jobs_removed]
    lines += [f"  + edge {up} -> {down}" for up, down in diff.edges_added]
    lines += [f"  - edge {up} -> {down}" for up, down in diff.edges_removed]
    for job, changes in diff.changed.items():
        lines += [f"  ~ {job}: {change}" for change in changes]
    for label, times in [("before", diff.triggers_before), ("after", diff.triggers_after)]:
        for trigger, ticks in times.items():
            fires = ", ".join(_when(t) for t in ticks) or "never"
            lines.append(f"  next fires {label:6} {trigger}: {fires}")
    return "\n".join(lines)


@click.command()
@click.argument("file", type=FILE)
@click.option("--flow", "flow_name", default=None, help="The flow to run (needed when FILE has several).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A flow parameter (repeatable).")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@click.option("--concurrency", type=int, default=8, show_default=True, help="Jobs run at once by the worker.")
@redis_option
@namespace_option
def run(
    file: Path,
    flow_name: str | None,
    params: tuple[str, ...],
    timeout: float | None,
    concurrency: int,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Compile, deploy and run one flow of FILE once with an in-process worker; print the outcome."""
    configure_logging(os.environ.get("TQFLOW_LOG_LEVEL", "warning"))
    result = compile_or_exit(file)
    assert result.plan is not None
    code = asyncio.run(
        run_flow(
            file,
            result.plan,
            flow_name,
            parse_params(params),
            timeout,
            concurrency,
            redis_url,
            namespace,
            open_client,
        )
    )
    sys.exit(code)


def register(group: click.Group) -> None:
    for command in (deploy, run):
        group.add_command(command)
