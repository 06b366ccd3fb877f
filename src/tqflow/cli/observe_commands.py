"""`tqc runs`, `tqc status RUN`, `tqc queues`: look into a deployment (rich tables, or --json)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from tqflow.cli import exit_codes
from tqflow.cli.common import namespace_option, open_client, redis_option
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.views import JobView, QueuesOverview, RunDetail, RunSummary

T = TypeVar("T")
STYLES = {
    "succeeded": "green",
    "running": "blue",
    "queued": "magenta",
    "limited": "dark_orange3",
    "scheduled": "yellow",
    "retrying": "dark_orange",
    "awaiting": "magenta",
    "child": "magenta",  # a sub-flow job waiting for its child run
    "starting": "cyan",
    "collecting": "cyan",
    "dead": "red",
    "failed": "red",
    "skipped": "bright_black",
    "cancelled": "bright_black",
    "waiting": "bright_black",
}
RUN_STATES = ("running", "succeeded", "failed", "cancelled")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def styled(state: str) -> Text:
    return Text(state, style=STYLES.get(state, ""))


def when(ms: int | None) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else ""


def inspect(redis_url: str | None, namespace: str, read: Callable[[Inspector], Awaitable[T]]) -> T:
    """Open the deployment's Redis, read with an Inspector, close; a missing thing exits NOT_FOUND."""

    async def go() -> T:
        async with open_client(redis_url, namespace, embedded_ok=False) as client:
            return await read(Inspector(client.redis, namespace))

    try:
        return asyncio.run(go())
    except LookupError as err:
        click.echo(f"error: {str(err).strip(chr(39))}", err=True)
        sys.exit(exit_codes.NOT_FOUND)


def make_console() -> Console:
    """Wide enough for ids when the output is not a terminal (a pipe, a file, a test)."""
    return Console(width=160) if not sys.stdout.isatty() else Console()


def print_json(value: BaseModel | list[Any]) -> None:
    data = (
        value.model_dump(mode="json")
        if isinstance(value, BaseModel)
        else [v.model_dump(mode="json") for v in value]
    )
    click.echo(json.dumps(data, indent=2))


@click.command()
@click.option("--flow", default=None, help="Only runs of this flow.")
@click.option(
    "--state",
    type=click.Choice(RUN_STATES),
    default=None,
    help="Only runs in this state.",
)
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@json_option
@redis_option
@namespace_option
def runs(
    flow: str | None,
    state: str | None,
    limit: int,
    offset: int,
    as_json: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """List runs, newest first."""
    page = inspect(redis_url, namespace, lambda i: i.runs(flow=flow, state=state, offset=offset, limit=limit))
    if as_json:
        print_json(page)
        return
    make_console().print(runs_table(page.items))
    if page.next_offset is not None:
        click.echo(f"more: --offset {page.next_offset}")


def runs_table(items: list[RunSummary]) -> Table:
    table = Table(
        Column("run", no_wrap=True), "flow", "state", "open", "failed", "started (UTC)", "finished (UTC)"
    )
    for run in items:
        table.add_row(
            run.id,
            f"{run.flow} v{run.version}",
            styled(run.state),
            str(run.open),
            str(run.failed),
            when(run.created),
            when(run.finished),
        )
    return table


@click.command()
@click.argument("run_id")
@json_option
@redis_option
@namespace_option
def status(run_id: str, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Show a run: its job graph with each job's state, attempts and error."""
    run = inspect(redis_url, namespace, lambda i: i.run(run_id))
    if as_json:
        print_json(run)
        return
    console = make_console()
    console.print(Text.assemble(f"run {run.id}  flow {run.flow} v{run.version}  ", styled(run.state)))
    if run.parent_job:
        console.print(f"child run of job {run.parent_job} (tqc status {run.parent_run})", markup=False)
    console.print(graph_lines(run))
    console.print(jobs_table(run.jobs))
    for name, value in run.outputs.items():
        console.print(f"output {name} = {json.dumps(value)}", markup=False)
    for name, error in run.output_errors.items():
        console.print(f"output {name}: cannot evaluate: {error}", markup=False)
    sys.exit(exit_codes.OK if run.state in ("succeeded", "running") else exit_codes.RUN_FAILED)


def layers(run: RunDetail) -> list[list[JobView]]:
    """Jobs by their longest path from a root: the columns of the graph."""
    depth: dict[str, int] = {}
    for job in run.jobs:  # the plan's topological order: upstream jobs come first
        depth[job.name] = 1 + max((depth.get(up, 0) for up in job.waits_for), default=-1)
    columns: list[list[JobView]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for job in run.jobs:
        columns[depth[job.name]].append(job)
    return columns


def graph_lines(run: RunDetail) -> Text:
    """The graph as one line per layer: `first ─▶ left, right ─▶ joined`, each job coloured by state."""
    text = Text()
    for index, column in enumerate(layers(run)):
        if index:
            text.append("  ─▶  ")
        for position, job in enumerate(column):
            if position:
                text.append(", ")
            text.append(job.name, style=STYLES.get(job.state, ""))
    return text


def jobs_table(jobs: list[JobView]) -> Table:
    table = Table(Column("job", no_wrap=True), "state", "attempt", "waits for", "task", "detail")
    for job in jobs:
        detail = ""
        if job.error:
            detail = f"{job.error.get('type', '')}: {job.error.get('message', '')}"
        elif job.reason:
            detail = job.reason
        if job.child_run:  # a sub-flow job: where to look next
            detail = f"child run {job.child_run}" + (f"; {detail}" if detail else "")
        table.add_row(
            job.name, styled(job.state), str(job.attempt), ", ".join(job.waits_for), job.task, detail
        )
    return table


@click.command()
@json_option
@redis_option
@namespace_option
def queues(as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Queue depth by queue and priority, running entries, the oldest waiting entry; delayed and DLQ."""
    overview = inspect(redis_url, namespace, lambda i: i.queues())
    if as_json:
        print_json(overview)
        return
    make_console().print(queues_table(overview))
    click.echo(f"delayed or retrying: {overview.delayed}   dead-lettered: {overview.dead}")


def queues_table(overview: QueuesOverview) -> Table:
    table = Table("queue", "priority", "waiting", "running", "oldest waiting")
    for queue in overview.queues:
        for level in queue.levels:
            if level.waiting or level.running:
                age = f"{level.oldest_age_ms / 1000:.1f}s" if level.oldest_age_ms is not None else ""
                table.add_row(queue.queue, level.priority, str(level.waiting), str(level.running), age)
        if not (queue.waiting or queue.running):
            table.add_row(queue.queue, "(all)", "0", "0", "")
    return table


def register(group: click.Group) -> None:
    for command in (runs, status, queues):
        group.add_command(command)
