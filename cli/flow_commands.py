"""`tqc deploy` and `tqc run`: put plans in Redis and run them."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click

from tqflow.cli.common import FILE, compile_or_exit, namespace_option, open_client, parse_params, redis_option
from tqflow.cli.run_command import run_flow
from tqflow.runtime.logging import configure_logging


@click.command()
@click.argument("files", nargs=-1, required=True, type=FILE)
@redis_option
@namespace_option
def deploy(files: tuple[Path, ...], redis_url: str | None, namespace: str) -> None:
    """Store the plans of FILES in Redis as new versions of their flows."""
    plans = [compile_or_exit(f).plan for f in files]

    async def go() -> None:
        async with open_client(redis_url, namespace, embedded_ok=False) as client:
            for plan in plans:
                assert plan is not None
                for deployed in await client.deploy(plan):
                    status = "deployed" if deployed.changed else "unchanged"
                    click.echo(
                        f"{status}: flow {deployed.flow} version {deployed.version} "
                        f"(plan {deployed.plan_id[:12]})"
                    )

    asyncio.run(go())


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
