"""`tqc fmt`, `tqc graph`, `tqc next`: tools for writing flows (nothing runs, no Redis)."""

from __future__ import annotations

import datetime as dt
import difflib
import shutil
import subprocess
import sys
from pathlib import Path

import click

from tqflow.cli import exit_codes
from tqflow.cli.common import FILE, compile_or_exit
from tqflow.compiler.render_graph import dot, mermaid
from tqflow.dsl.formatter import FormatError, duration, format_source
from tqflow.dsl.source import Source
from tqflow.plan import FlowPlan, Plan
from tqflow.plan.firetimes import next_fire_times


@click.command(name="fmt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file is not formatted (for CI).")
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Print what would change and change nothing (like black, gofmt -d).",
)
def fmt_command(paths: tuple[Path, ...], check: bool, show_diff: bool) -> None:
    """Rewrite the .tqflow files in PATHS (files or folders) in the canonical layout, keeping comments."""
    files = [f for p in paths for f in (sorted(p.rglob("*.tqflow")) if p.is_dir() else [p])]
    unformatted = failed = 0
    dry = check or show_diff  # a diff is a preview: the file is never written
    for path in files:
        source = Source.from_file(path)
        text = source.text
        try:
            formatted = format_source(source)
        except FormatError as err:
            click.echo(str(err), err=True)
            failed += 1
            continue
        if formatted == text:
            continue
        unformatted += 1
        if dry:
            if check:
                click.echo(f"would reformat {path}", err=True)
            if show_diff:
                diff = difflib.unified_diff(
                    text.splitlines(True), formatted.splitlines(True), str(path), f"{path} (formatted)"
                )
                click.echo("".join(diff))
        else:
            path.write_text(formatted, encoding="utf-8")
            click.echo(f"reformatted {path}", err=True)
    if failed:
        sys.exit(exit_codes.COMPILE_ERROR)
    if check and unformatted:
        sys.exit(exit_codes.RUN_FAILED)
    if not dry or not unformatted:
        done = len(files) - unformatted if dry else len(files)
        click.echo(f"{done} file{'s' * (done != 1)} {'already formatted' if dry else 'formatted'}", err=True)


GRAPH_FORMATS = ("mermaid", "dot", "svg", "png")


@click.command(name="graph")
@click.argument("file", type=FILE)
@click.option(
    "--flow", "-f", "flow_name", default=None, help="The flow to draw (needed when FILE has several)."
)
@click.option("--format", "fmt", type=click.Choice(GRAPH_FORMATS), default="mermaid", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def graph_command(file: Path, flow_name: str | None, fmt: str, output: Path | None) -> None:
    """Draw the job graph of a flow: solid edges carry data, dashed ones are `after` conditions."""
    flow = _pick_flow(compile_or_exit(file).plan, flow_name)
    if fmt == "mermaid":
        _write(mermaid(flow).encode(), output)
    elif fmt == "dot":
        _write(dot(flow).encode(), output)
    else:
        _write(_graphviz(dot(flow), fmt), output)


def _graphviz(text: str, fmt: str) -> bytes:
    binary = shutil.which("dot")
    if binary is None:
        raise click.ClickException(
            f"--format {fmt} needs Graphviz's `dot` program, which is not on PATH. Install Graphviz "
            "(apt-get install graphviz, brew install graphviz, or https://graphviz.org/download/), "
            "or use --format mermaid or --format dot, which need nothing."
        )
    done = subprocess.run([binary, f"-T{fmt}"], input=text.encode(), capture_output=True, timeout=60)
    if done.returncode != 0:
        raise click.ClickException(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _write(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)
        click.echo(f"wrote {output}", err=True)


def _pick_flow(plan: Plan | None, name: str | None) -> FlowPlan:
    assert plan is not None
    if name is None:
        if len(plan.flows) == 1:
            return next(iter(plan.flows.values()))
        raise click.UsageError(f"the file has several flows, choose one with --flow: {', '.join(plan.flows)}")
    if name not in plan.flows:
        hint = difflib.get_close_matches(name, list(plan.flows), n=1)
        click.echo(
            f"error: no flow `{name}` in the file{f'; did you mean `{hint[0]}`?' if hint else ''}", err=True
        )
        sys.exit(exit_codes.NOT_FOUND)
    return plan.flows[name]


@click.command(name="next")
@click.argument("file", type=FILE)
@click.option("--flow", "-f", "flow_name", default=None, help="The flow (needed when FILE has several).")
@click.option("--count", "-n", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--after",
    default=None,
    help="Start from this ISO 8601 time instead of now (an offset is required, e.g. 2026-03-28T00:00Z).",
)
def next_command(file: Path, flow_name: str | None, count: int, after: str | None) -> None:
    """Print the next fire times of a flow's schedules, in each schedule's time zone."""
    flow = _pick_flow(compile_or_exit(file).plan, flow_name)
    start = _parse_after(after)
    if not flow.triggers:
        click.echo(f"flow `{flow.name}` has no schedule", err=True)
        sys.exit(exit_codes.NOT_FOUND)
    for trigger in flow.triggers:
        every = duration(trigger.every_ms or 0)
        if trigger.kind == "event":
            click.echo(f'{trigger.name}  event "{trigger.event}"  (fires on each event: `tqc emit`)')
            continue
        what = {"cron": f'cron "{trigger.cron}"', "every": f"every {every}", "at": f'at "{trigger.at}"'}
        click.echo(f"{trigger.name}  {what[trigger.kind]}  ({trigger.timezone})")
        times = next_fire_times(trigger, start, count)
        for time in times:
            click.echo(f"  {time.isoformat()}")
        if not times:
            click.echo("  (no more fire times)")


def _parse_after(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint="--after") from err
    if value.tzinfo is None:
        raise click.BadParameter("give an offset, like 2026-03-28T00:00+00:00", param_hint="--after")
    return value


def register(group: click.Group) -> None:
    for command in (fmt_command, graph_command, next_command):
        group.add_command(command)
