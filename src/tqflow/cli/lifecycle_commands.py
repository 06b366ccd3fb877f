"""`tqc start`, `tqc resume`, `tqc pause`, `tqc unpause`, `tqc undeploy`, `tqc backfill`: a deployed flow's
life on the cluster's own workers (unlike `tqc run`, none of these starts a worker)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from tqflow.cli import exit_codes
from tqflow.cli.common import namespace_option, open_client, parse_params, redis_option
from tqflow.cli.run_command import print_run
from tqflow.runtime.client import Client
from tqflow.runtime.deployments import FlowNotDeployed
from tqflow.runtime.lifecycle import BackfillError
from tqflow.runtime.params import ParamError
from tqflow.runtime.resume import ResumeError
from tqflow.runtime.runs import RunInfo

T = TypeVar("T")


def _on_client(redis_url: str | None, namespace: str, action: Callable[[Client], Awaitable[T]]) -> T:
    """Run `action` with a client of the deployment; a missing flow is exit code NOT_FOUND."""

    async def go() -> T:
        async with open_client(redis_url, namespace, embedded_ok=False) as client:
            return await action(client)

    try:
        return asyncio.run(go())
    except FlowNotDeployed as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(exit_codes.NOT_FOUND)


def run_json(info: RunInfo) -> dict[str, Any]:
    data = dataclasses.asdict(info)
    data["finished"] = info.finished
    return data


@click.command()
@click.argument("flow")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A flow parameter (repeatable).")
@click.option("--wait", is_flag=True, help="Wait for the run to end; print its outcome and outputs.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@redis_option
@namespace_option
def start(
    flow: str,
    params: tuple[str, ...],
    wait: bool,
    timeout: float | None,
    as_json: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Start a run of FLOW's deployed version on the cluster's workers and print its id.

    With --wait: its outcome and outputs too; exit 0 when it succeeded, 1 when it failed or was
    cancelled, 6 on --timeout."""

    async def go(client: Client) -> int:
        try:
            run_id = await client.start_run(flow, parse_params(params))
        except ParamError as err:
            click.echo(f"error: {err}", err=True)
            return exit_codes.USAGE
        if not wait:
            click.echo(json.dumps({"id": run_id, "flow": flow}) if as_json else run_id)
            return exit_codes.OK
        return await _outcome(client, run_id, timeout, as_json)

    sys.exit(_on_client(redis_url, namespace, go))


async def _outcome(client: Client, run_id: str, timeout: float | None, as_json: bool) -> int:
    """Wait for the run; print its jobs and outputs (or JSON); the exit code of its end."""
    info = await client.wait(run_id, timeout)
    if as_json:
        click.echo(json.dumps(run_json(info), indent=2, default=str))
    else:
        click.echo(f"run {run_id} of flow {info.flow}")
        print_run(info)
    if not info.finished:
        return exit_codes.TIMEOUT
    return exit_codes.OK if info.state == "succeeded" else exit_codes.RUN_FAILED


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("--from", "from_job", default=None, metavar="JOB", help="Re-run JOB and everything downstream.")
@click.option("--wait", is_flag=True, help="Wait for the run to end again; print its outcome and outputs.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@redis_option
@namespace_option
def resume(
    run_id: str,
    from_job: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Re-run the jobs of an ended RUN that did not succeed, keeping the outputs of those that did, on the
    version the run started with. The run is running again and ends again; --wait exits as `tqc start`."""

    async def go(client: Client) -> int:
        try:
            resumed = await client.resume(run_id, from_job)
        except ResumeError as err:
            click.echo(f"error: {err}", err=True)
            return exit_codes.USAGE
        except LookupError as err:
            click.echo(f"error: {str(err).strip(chr(39))}", err=True)
            return exit_codes.NOT_FOUND
        if not wait:
            if as_json:
                click.echo(json.dumps({"id": run_id, "rerun": resumed.rerun}))
            else:
                click.echo(f"run {run_id}: {resumed.rerun} job(s) run again")
            return exit_codes.OK
        return await _outcome(client, run_id, timeout, as_json)

    sys.exit(_on_client(redis_url, namespace, go))


@click.command()
@click.argument("flow")
@redis_option
@namespace_option
def pause(flow: str, redis_url: str | None, namespace: str) -> None:
    """Stop FLOW's schedules. Runs in progress go on; `tqc start` still starts runs by hand."""
    version = _on_client(redis_url, namespace, lambda c: c.pause(flow))
    click.echo(f"paused: flow {flow} (version {version}); its schedules fire no more until `tqc unpause`")


@click.command()
@click.argument("flow")
@redis_option
@namespace_option
def unpause(flow: str, redis_url: str | None, namespace: str) -> None:
    """Restart FLOW's schedules; ticks missed while paused follow each schedule's catch-up policy."""
    version = _on_client(redis_url, namespace, lambda c: c.unpause(flow))
    click.echo(f"unpaused: flow {flow} (version {version})")


@click.command()
@click.argument("flow")
@click.option("--cancel-runs", is_flag=True, help="Cancel its runs in progress.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@redis_option
@namespace_option
def undeploy(flow: str, cancel_runs: bool, yes: bool, redis_url: str | None, namespace: str) -> None:
    """Remove FLOW: no new runs, no more ticks. Runs in progress finish on their version (or are cancelled
    with --cancel-runs). Deploying it again starts a new version."""
    if not yes:
        what = "and cancel its runs in progress" if cancel_runs else "(runs in progress will finish)"
        click.confirm(f"Undeploy flow {flow} {what}?", default=False, abort=True)

    async def go(client: Client) -> None:
        gone = await client.undeploy(flow, cancel_runs=cancel_runs)
        click.echo(f"undeployed: flow {flow} (was version {gone.version})")
        if gone.running:
            click.echo(f"{len(gone.running)} run(s) in progress will finish on version {gone.version}")
        if gone.cancelled:
            click.echo(f"cancelled {len(gone.cancelled)} run(s): {', '.join(gone.cancelled)}")

    _on_client(redis_url, namespace, go)


def _instant(text: str) -> int:
    """Milliseconds since the epoch from an ISO 8601 time; without an offset it is read as UTC."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time like 2026-11-01T00:00:00+01:00") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@click.command()
@click.argument("flow")
@click.option("--from", "start_at", required=True, metavar="TIME", help="First instant (ISO 8601), included.")
@click.option("--to", "end_at", required=True, metavar="TIME", help="Last instant (ISO 8601), included.")
@click.option("--schedule", default=None, metavar="N", help="Which schedule: its position (0…) or name.")
@click.option("--rate", type=float, default=10.0, show_default=True, help="Runs started a second, at most.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object a tick.")
@redis_option
@namespace_option
def backfill(
    flow: str,
    start_at: str,
    end_at: str,
    schedule: str | None,
    rate: float,
    as_json: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Start the runs that FLOW's schedule would have started between --from and --to.

    Each tick is started once: backfilling the same window twice, or a tick the scheduler already
    fired, starts nothing new."""
    from_ms, to_ms = _instant(start_at), _instant(end_at)

    async def go(client: Client) -> int:
        counts = {"started": 0, "exists": 0, "fired": 0}
        try:
            async for item in client.backfill(flow, from_ms, to_ms, schedule=schedule, rate=rate):
                counts[item.status] += 1
                when = dt.datetime.fromtimestamp(item.tick / 1000, dt.UTC).isoformat()
                if as_json:
                    click.echo(json.dumps({"tick": when, "run": item.run_id, "status": item.status}))
                else:
                    click.echo(f"{when}  {item.status:<7}  run {item.run_id}")
        except BackfillError as err:
            click.echo(f"error: {err}", err=True)
            return exit_codes.USAGE
        if not as_json:
            click.echo(
                f"{counts['started']} started, {counts['exists']} backfilled before, "
                f"{counts['fired']} already fired by the schedule"
            )
        return exit_codes.OK

    sys.exit(_on_client(redis_url, namespace, go))


def register(group: click.Group) -> None:
    for command in (start, resume, pause, unpause, undeploy, backfill):
        group.add_command(command)
