"""`tqc check`, `tqc compile`, `tqc explain`: the compiler's commands (nothing runs, no Redis)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tqflow.cli import exit_codes
from tqflow.cli.common import FILE, compile_or_exit
from tqflow.compiler import INTERNAL, compile_file
from tqflow.compiler.codes import CODES, explain
from tqflow.dsl.collector import collector_paused
from tqflow.dsl.diagnostics import render_all, to_json


@click.command()
@click.argument("files", nargs=-1, required=True, type=FILE)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check(files: tuple[Path, ...], fmt: str) -> None:
    """Check FILES for errors without running anything. Exit 1 when there are errors."""
    with collector_paused():  # for the whole command: the trees live until it ends
        results = [compile_file(f) for f in files]
    items = [d for r in results for d in r.diagnostics]
    if fmt == "json":
        click.echo(to_json(items))
    elif items:
        click.echo(render_all(items), err=True)
    else:
        click.echo(f"ok: {len(files)} file{'s' * (len(files) != 1)} checked, no problems")
    if any(d.code == INTERNAL for d in items):
        sys.exit(exit_codes.COMPILE_ERROR)  # an internal error: 3, as documented for TQ0000
    sys.exit(exit_codes.RUN_FAILED if any(not r.ok for r in results) else exit_codes.OK)


@click.command(name="compile")
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
    if output:
        output.write_text(plan.to_json() + "\n")
        click.echo(f"plan {plan.id[:12]} written to {output}", err=True)
    else:
        click.echo(json.dumps(json.loads(plan.to_json()), indent=2, sort_keys=True))


@click.command(name="explain")
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


def register(group: click.Group) -> None:
    for command in (check, compile_command, explain_command):
        group.add_command(command)
