"""`tqc emit NAME --data JSON`: send an event; each deployed flow with a `schedule event "NAME"` starts a
run (runtime/events.py)."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from tqflow.cli import exit_codes
from tqflow.cli.common import namespace_option, open_client, redis_option
from tqflow.cli.signal_commands import read_json_option
from tqflow.runtime.events import EventError, EventRun


@click.command()
@click.argument("name")
@click.option(
    "--data",
    "data",
    default="{}",
    show_default=True,
    metavar="JSON",
    help="The event's data: JSON, @FILE or -.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@redis_option
@namespace_option
def emit(name: str, data: str, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Send event NAME: every deployed flow with `schedule event "NAME"` starts a run (a paused flow none;
    an event whose trigger `key` was seen within its window starts none and names the run it started)."""
    payload = read_json_option(data)

    async def go() -> int | list[EventRun]:
        async with open_client(redis_url, namespace, embedded_ok=False) as client:
            try:
                return await client.emit(name, payload)
            except EventError as err:
                click.echo(f"error: {err}", err=True)
                return exit_codes.USAGE

    outcome = asyncio.run(go())
    if isinstance(outcome, int):
        sys.exit(outcome)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in outcome]))
        return
    if not outcome:
        click.echo(f"event {name}: no deployed flow listens for it")
    for run in outcome:
        shown = {
            "started": f"started run {run.run_id}",
            "duplicate": f"duplicate of run {run.run_id} (same key)",
            "paused": "not started: the flow is paused",
        }[run.status]
        click.echo(f"{run.flow} ({run.trigger}): {shown}")


def register(group: click.Group) -> None:
    group.add_command(emit)
