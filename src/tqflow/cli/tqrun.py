"""`tqrun`: run workers (and a local Redis server) for deployed flows."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from tqflow.cli import exit_codes
from tqflow.cli.api_command import alerts_option, api, read_alerts
from tqflow.cli.common import compile_or_exit, namespace_option, redis_option
from tqflow.runtime import eventloop
from tqflow.runtime.cluster.retention import retention_from
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.connection import resolve_url
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.logging import configure_logging
from tqflow.runtime.supervisor import Observe, WorkerSpec, payload_settings, run_worker, supervise
from tqflow.runtime.worker import DEFAULT_WEIGHTS, WorkerSettings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tqflow")
def cli() -> None:
    """tqflow runtime: workers and a local Redis server."""


@cli.command()
@click.argument("flow_files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-m", "--module", "modules", multiple=True, help="A Python module with @task functions.")
@click.option("-q", "--queues", default=None, help="Comma-separated queues (default: the flows' queues).")
@click.option(
    "-c", "--concurrency", type=int, default=10, show_default=True, help="Jobs at once, per process."
)
@click.option(
    "-p", "--processes", type=int, default=1, show_default=True, help="Worker processes (supervised)."
)
@click.option("--process-pool", type=int, default=0, help="Pool processes for executor='process' tasks.")
@click.option(
    "--weights",
    default=None,
    help="Shares of the levels, e.g. critical=32,high=8,normal=4,low=2,batch=1 (critical=0: always first).",
)
@click.option("--aging", type=float, default=60.0, show_default=True, help="Seconds before jobs age up.")
@click.option("--codec", type=click.Choice(["json", "msgpack", "pickle"]), default="json", show_default=True)
@click.option(
    "--compression",
    type=click.Choice(["none", "zlib", "zstd"]),
    default=None,
    help="Compress what the worker writes (tasks without their own): over 64 bytes or --compress-over.",
)
@click.option(
    "--compress-over",
    type=int,
    default=None,
    help="Compress payloads longer than this (bytes; zlib unless --compression).",
)
@click.option(
    "--log-level", default=None, help="debug, info, warning or error (default: $TQFLOW_LOG_LEVEL or info)."
)
@click.option("--node", default=None, help="The machine's name in `tqc workers` (default: the host name).")
@click.option("--grace", type=float, default=10.0, show_default=True, help="SIGTERM: seconds to finish jobs.")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus /metrics on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port.")
@click.option(
    "--loop",
    "event_loop",
    type=click.Choice(eventloop.CHOICES),
    default="auto",
    show_default=True,
    envvar="TQFLOW_EVENT_LOOP",
    help="Event loop: uvloop when installed (auto), or force one.",
)
@click.option(
    "--keep-results", default=None, help="Keep finished standalone jobs this long (1d; TQFLOW_KEEP_RESULTS)."
)
@click.option(
    "--keep-history", default=None, help="Keep attempt histories this long (as results; TQFLOW_KEEP_HISTORY)."
)
@click.option(
    "--keep-runs", default=None, help="Keep finished runs and their jobs this long (7d; TQFLOW_KEEP_RUNS)."
)
@alerts_option
@redis_option
@namespace_option
def worker(
    flow_files: tuple[Path, ...],
    modules: tuple[str, ...],
    queues: str | None,
    concurrency: int,
    processes: int,
    process_pool: int,
    weights: str | None,
    aging: float,
    codec: str,
    compression: str | None,
    compress_over: int | None,
    log_level: str | None,
    redis_url: str | None,
    namespace: str,
    node: str | None = None,
    grace: float = 10.0,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    event_loop: str = "auto",
    alerts_file: Path | None = None,
    keep_results: str | None = None,
    keep_history: str | None = None,
    keep_runs: str | None = None,
) -> None:
    """Run a worker for the tasks that FLOW_FILES use (and any --module).

    Pickle payloads need $TQFLOW_SIGNING_KEY (the same secret on clients and workers)."""
    configure_logging(log_level)
    try:
        url = resolve_url(redis_url, os.environ)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    if url is None:
        raise click.UsageError("give --redis URL or set TQFLOW_REDIS_URL (start one with `tqrun server`)")
    names, folders, queue_names = list(modules), [Path.cwd()], set()
    for file in flow_files:
        plan = compile_or_exit(file).plan
        assert plan is not None
        folders.append(file.resolve().parent)
        for flow in plan.flows.values():
            names.extend(flow.modules)
            queue_names |= {flow.queue, *(j.queue for j in flow.jobs.values())}
    if not names:
        raise click.UsageError("nothing to run: give .tqflow files or --module")
    try:
        settings = WorkerSettings(
            queues=queues.split(",") if queues else sorted(queue_names or {"default"}),
            concurrency=concurrency,
            process_pool=process_pool,
            weights=_weights(weights) if weights else dict(DEFAULT_WEIGHTS),
            aging_ms=int(aging * 1000),
            payloads=payload_settings(codec, compress_over, os.environ, compression),
            cluster=_cluster_settings(node, grace),
        )
        keep = retention_from(keep_results, keep_history, keep_runs, os.environ)
        settings.result_ttl_ms, settings.keep_history_ms, settings.keep_runs_ms = (
            keep.results_ms,
            keep.history_ms,
            keep.runs_ms,
        )
        eventloop.resolve(event_loop)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    spec = WorkerSpec(
        url,
        namespace,
        list(dict.fromkeys(names)),
        [str(f) for f in folders],
        settings,
        log_level,
        Observe(metrics_port, metrics_host, read_alerts(alerts_file)),
        event_loop=event_loop,
    )
    code = run_worker(spec) if processes <= 1 else supervise(spec, processes)
    if code == exit_codes.IMPORT_ERROR:
        click.echo("error: a task module could not be imported (see above)", err=True)
    sys.exit(code)


def _cluster_settings(node: str | None, grace: float) -> ClusterSettings:
    cluster = ClusterSettings(grace_s=grace)
    if node:
        cluster.node = node
    return cluster


def _weights(text: str) -> dict[str, int]:
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise click.BadParameter(f"{part!r} is not LEVEL=WEIGHT", param_hint="--weights")
        out[name.strip()] = int(value)
    return out


@cli.command()
@click.option(
    "--dir",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".tqflow"),
    show_default=True,
    help="State folder (socket, AOF, log).",
)
@click.option("--appendonly/--no-appendonly", default=True, show_default=True, help="Keep an AOF.")
def server(state_dir: Path, appendonly: bool) -> None:
    """Start a local Redis server on a Unix socket and print its URL; stop with Ctrl-C."""
    embedded = EmbeddedRedis(state_dir / "redis", appendonly=appendonly)
    url = embedded.start()
    click.echo(f"Redis is listening on {url}\nexport TQFLOW_REDIS_URL={url}")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        embedded.stop()


cli.add_command(api)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
