"""`tqc signal RUN NAME --data JSON` sends a run's signal job its payload; `tqc signals [RUN]` lists the
signal jobs awaiting one (runtime/signals.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from tqflow.cli import exit_codes
from tqflow.cli.common import namespace_option, open_client, redis_option
from tqflow.errors import NotFound
from tqflow.runtime.signals import SignalPayloadError, SignalRefused


def read_json_option(data: str) -> Any:
    """The --data value: JSON text, `@FILE` for a file's, `-` for standard input's."""
    where = "--data"
    if data == "-":
        data, where = sys.stdin.read(), "standard input"
    elif data.startswith("@"):
        try:
            data, where = Path(data[1:]).read_text(), data[1:]
        except OSError as err:
            raise click.BadParameter(f"cannot read {data[1:]}: {err.strerror}", param_hint="--data") from err
    try:
        return json.loads(data)
    except json.JSONDecodeError as err:
        raise click.BadParameter(
            f"{where} is not JSON: {err.msg} at line {err.lineno} column {err.colno} "
            "(a string is quoted: '\"yes\"'; an object: '{\"approved\": true}')",
            param_hint="--data",
        ) from err


@click.command()
@click.argument("run_id", metavar="RUN")
@click.argument("name")
@click.option(
    "--data", "data", required=True, metavar="JSON", help="The payload: JSON text, @FILE, or - (stdin)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@redis_option
@namespace_option
def signal(run_id: str, name: str, data: str, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Send RUN's signal job NAME its payload; it becomes the job's result (NAME.out).

    The payload is checked against the job's type; a payload that does not fit is refused and the job
    keeps waiting (exit 2). Sent before the run reaches the job, it is kept and delivered when it does."""
    payload = read_json_option(data)

    async def go() -> int:
        async with open_client(redis_url, namespace, embedded_ok=False) as client:
            try:
                sent = await client.signal(run_id, name, payload)
            except (SignalPayloadError, SignalRefused) as err:
                click.echo(f"error: {err}", err=True)
                return exit_codes.USAGE
            except NotFound as err:
                click.echo(f"error: {str(err).strip(chr(39))}", err=True)
                return exit_codes.NOT_FOUND
        if as_json:
            click.echo(json.dumps({"run": run_id, "name": name, "status": sent.status}))
        elif sent.status == "delivered":
            click.echo(f"run {run_id}: signal {name} delivered")
        else:
            click.echo(f"run {run_id}: signal {name} kept; delivered when the run reaches `{name}`")
        return exit_codes.OK

    sys.exit(asyncio.run(go()))


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


@click.command()
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@redis_option
@namespace_option
def signals(run_id: str | None, limit: int, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """List the signal jobs awaiting a payload (RUN's only, when given), oldest first."""

    async def go() -> list[Any]:
        async with open_client(redis_url, namespace, embedded_ok=False) as client:
            return await client.waiting_signals(run_id, limit)

    waiting = asyncio.run(go())
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(item) for item in waiting], indent=2))
        return
    if not waiting:
        click.echo("no signal job is awaiting a payload")
        return
    for item in waiting:
        click.echo(
            f"run {item.run_id}  {item.flow}.{item.name}: {item.type}  since {_when(item.since_ms)}  "
            f"times out {_when(item.timeout_at_ms)}"
        )
        click.echo(f"  tqc signal {item.run_id} {item.name} --data '<{item.type} as JSON>'")


def register(group: click.Group) -> None:
    for command in (signal, signals):
        group.add_command(command)
