"""`tqc`: check, compile, deploy and run .tqflow files."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import click

from tqflow.cli import exit_codes
from tqflow.cli.common import compile_or_exit, namespace_option, open_client, parse_params, redis_option
from tqflow.cli.run_command import run_flow
from tqflow.compiler import compile_file
from tqflow.compiler.codes import CODES, explain
from tqflow.dsl.diagnostics import render_all, to_json
from tqflow.runtime.logging import configure_logging

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tqflow")
def cli() -> None:
    """tqflow compiler and client: check, compile, deploy and run .tqflow files."""


@cli.command()
@click.argument("files", nargs=-1, required=True, type=FILE)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check(files: tuple[Path, ...], fmt: str) -> None:
    """Check FILES for errors without running anything. Exit 1 when there are errors."""
    results = [compile_file(f) for f in files]
    items = [d for r in results for d in r.diagnostics]
    if fmt == "json":
        click.echo(to_json(items))
    else:
        if items:
            click.echo(render_all(items), err=True)
        else:
            click.echo(f"ok: {len(files)} file{'s' * (len(files) != 1)} checked, no problems")
    sys.exit(exit_codes.RUN_FAILED if any(not r.ok for r in results) else exit_codes.OK)


@cli.command(name="compile")
@click.argument("file", type=FILE)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the plan here (default: standard output).",
)
def compile_command(file: Path, output: Path | None) -> None:
    """Compile FILE to its plan (canonical JSON)."""
    plan = compile_or_exit(file).plan
    assert plan is not None
    text = json.dumps(json.loads(plan.to_json()), indent=2, sort_keys=True)
    if output:
        output.write_text(plan.to_json() + "\n")
        click.echo(f"plan {plan.id[:12]} written to {output}", err=True)
    else:
        click.echo(text)


@cli.command()
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


@cli.command()
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


@cli.command(name="explain")
@click.argument("code", required=False)
def explain_command(code: str | None) -> None:
    """Print the long explanation of a diagnostic CODE (or list all codes)."""
    if code is None:
        for entry in CODES.values():
            click.echo(f"{entry.code}  {entry.title}")
        return
    text = explain(code)
    if text is None:
        click.echo(f"unknown code {code}; `tqc explain` lists them", err=True)
        sys.exit(exit_codes.NOT_FOUND)
    click.echo(text)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
