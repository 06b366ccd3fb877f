"""Schedules made from Python or here: `tqc schedules [list|add|show|remove]` (runtime/schedules.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import click

from tqflow.cli import exit_codes
from tqflow.cli.common import namespace_option, redis_option
from tqflow.cli.listing import json_option, print_item, print_items
from tqflow.cli.ops_commands import _arguments, _with_client
from tqflow.plan import PRIORITIES
from tqflow.plan.durations import format_duration
from tqflow.runtime.client import Client
from tqflow.runtime.schedules import Schedule


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rule(found: Schedule) -> str:
    if found.kind == "cron":
        return f"cron {found.cron!r} tz {found.timezone}"
    if found.kind == "every":
        return f"every {format_duration(found.every_ms or 0)}"  # as written: `every 2s`, not `2000 ms`
    return f"at {found.at}"


def _line(found: Schedule) -> str:
    state = "paused" if found.paused else f"next {_when(found.next_ms)}"
    return f"{found.name:<24} {found.task:<28} {_rule(found):<36} {state}  fired {found.fired}"


def _print(found: Schedule) -> None:
    click.echo(f"schedule  {found.name} (flow {found.flow}, version {found.version})")
    click.echo(f"task      {found.task}  args {json.dumps(found.args)}")
    click.echo(f"when      {_rule(found)}  catchup {found.catchup}  overlap {found.overlap}")
    click.echo(f"dst       gap {found.on_dst_gap}, repeat {found.on_dst_repeat}")
    click.echo(f"queue     {found.queue} ({found.priority})")
    click.echo(f"next      {'paused' if found.paused else _when(found.next_ms)}")
    last = f"{_when(found.last_fired_ms)} (run {found.last_run})" if found.last_run else "-"
    click.echo(f"last      {last}; fired {found.fired}, skipped {found.skipped}")


@click.group(invoke_without_command=True)
@json_option
@redis_option
@namespace_option
@click.pass_context
def schedules(ctx: click.Context, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Schedules of tasks (`client.schedule(...)`): list them (the default), add, show or remove one."""
    if ctx.invoked_subcommand is None:
        _list(as_json, redis_url, namespace)


def _list(as_json: bool, redis_url: str | None, namespace: str) -> None:
    async def act(client: Client) -> int:
        print_items(
            await client.schedules(), as_json, line=_line, as_dict=dataclasses.asdict, none="no schedules"
        )
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@schedules.command("list")
@json_option
@redis_option
@namespace_option
def schedules_list(as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Every schedule: task, rule, next tick, ticks fired."""
    _list(as_json, redis_url, namespace)


@schedules.command("add")
@click.argument("task")
@click.option("--cron", default=None, help="A cron rule: 5 fields, or 6 with seconds first.")
@click.option("--every", default=None, help="An interval (30s, 5m, 1h), aligned to the epoch.")
@click.option("--at", default=None, help="Once, at this ISO 8601 time.")
@click.option("--tz", default="UTC", show_default=True, help="The cron rule's IANA time zone.")
@click.option("--name", default=None, help="The schedule's name (default: the task's).")
@click.option("-a", "--arg", "pairs", multiple=True, help="An argument, NAME=VALUE (VALUE as JSON or text).")
@click.option("--queue", default=None, help="Default: the task's.")
@click.option("--priority", type=click.Choice(PRIORITIES), default=None, help="Default: the task's.")
@click.option("--catchup", default="none", show_default=True, help="none, all, last(N) or all(within=1h).")
@click.option("--overlap", type=click.Choice(["skip", "queue", "allow"]), default="skip", show_default=True)
@click.option("--on-dst-gap", type=click.Choice(["shift", "skip"]), default="shift", show_default=True)
@click.option("--on-dst-repeat", type=click.Choice(["first", "both"]), default="first", show_default=True)
@redis_option
@namespace_option
def schedules_add(
    task: str,
    cron: str | None,
    every: str | None,
    at: str | None,
    tz: str,
    name: str | None,
    pairs: tuple[str, ...],
    queue: str | None,
    priority: str | None,
    catchup: str,
    overlap: str,
    on_dst_gap: str,
    on_dst_repeat: str,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Run TASK (`module.function`) on a schedule; the same name again replaces that schedule."""
    args = _arguments(pairs)

    async def act(client: Client) -> int:
        made = await client.schedule(
            task,
            cron=cron,
            every=every,
            at=at,
            tz=tz,
            name=name,
            args=args,
            queue=queue,
            priority=priority,
            catchup=catchup,
            overlap=overlap,
            on_dst_gap=on_dst_gap,
            on_dst_repeat=on_dst_repeat,
        )
        _print(made)
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@schedules.command("show")
@click.argument("name")
@json_option
@redis_option
@namespace_option
def schedules_show(name: str, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """One schedule: its rule, policies, next tick and the last run it started."""

    async def act(client: Client) -> int:
        print_item(await client.schedule_info(name), as_json, show=_print, as_dict=dataclasses.asdict)
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@schedules.command("remove")
@click.argument("name")
@redis_option
@namespace_option
def schedules_remove(name: str, redis_url: str | None, namespace: str) -> None:
    """Remove a schedule: no more ticks (runs already started go on)."""

    async def act(client: Client) -> int:
        gone = await client.unschedule(name)
        click.echo(f"removed schedule {gone.name} ({gone.task}, {_rule(gone)})")
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


def register(group: click.Group) -> None:
    group.add_command(schedules)
