"""`tqc limits`: each limiter's keys, how much of each is in use, and the jobs waiting for it."""

from __future__ import annotations

import datetime as dt

import click
from rich.table import Table

from tqflow.cli.common import namespace_option, redis_option
from tqflow.cli.observe_commands import inspect, json_option, make_console, print_json
from tqflow.runtime.limit_inspect import LimitsOverview


@click.command()
@click.argument("limiter", required=False)
@click.option("--keys", "max_keys", type=int, default=20, show_default=True, help="Keys shown per limiter.")
@json_option
@redis_option
@namespace_option
def limits(limiter: str | None, max_keys: int, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Rate and concurrency limiters: per key, what is in use and how many jobs wait (LIMITER: only it)."""
    overview = inspect(redis_url, namespace, lambda i: i.limits(limiter))
    if as_json:
        print_json(overview)
        return
    if not overview.limiters:
        click.echo(f"no limiter {limiter!r} has been used" if limiter else "no limiter has been used yet")
        return
    make_console().print(limits_table(overview, max_keys))
    if overview.truncated:
        click.echo("(more keys than one overview reads: the busiest are shown)")


def limits_table(overview: LimitsOverview, max_keys: int = 20) -> Table:
    table = Table("limiter", "definition", "key", "in use", "waiting", "tokens", "next admission")
    for limiter in overview.limiters:
        table.add_row(
            limiter.name, limiter.definition, "(all keys)", str(limiter.in_use), str(limiter.waiting), "", ""
        )
        for view in limiter.keys[:max_keys]:
            due = ""
            if view.next_admission_ms is not None:
                due = dt.datetime.fromtimestamp(view.next_admission_ms / 1000, dt.UTC).strftime(
                    "%H:%M:%S.%f"
                )[:-3]
            tokens = "" if view.tokens is None else f"{view.tokens:g}"
            table.add_row(
                "", "", view.key or "(one bucket)", str(view.in_use), str(view.waiting), tokens, due
            )
        if len(limiter.keys) > max_keys:
            table.add_row("", "", f"… {len(limiter.keys) - max_keys} more keys", "", "", "", "")
    return table


def register(group: click.Group) -> None:
    group.add_command(limits)
