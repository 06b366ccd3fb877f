"""`tqrun`: run workers (and a local Redis server) for deployed flows."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import click

from tqflow.cli import exit_codes
from tqflow.cli.api_command import alerts_option, api, read_alerts
from tqflow.cli.common import compile_or_exit, namespace_option, redis_option
from tqflow.runtime.alerts import AlertSettings
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.connection import connect, resolve_url
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.logging import configure_logging
from tqflow.runtime.observability import for_worker
from tqflow.runtime.registry import TaskLoadError, load_tasks
from tqflow.runtime.worker import Worker, WorkerSettings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tqflow")
def cli() -> None:
    """tqflow runtime: workers and a local Redis server."""


@cli.command()
@click.argument("flow_files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-m", "--module", "modules", multiple=True, help="A Python module with @task functions.")
@click.option("-q", "--queues", default=None, help="Comma-separated queues (default: the flows' queues).")
@click.option("-c", "--concurrency", type=int, default=10, show_default=True, help="Jobs run at once.")
@click.option(
    "--log-level", default=None, help="debug, info, warning or error (default: $TQFLOW_LOG_LEVEL or info)."
)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus /metrics on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port.")
@alerts_option
@click.option("--node", default=None, help="The machine's name in `tqc workers` (default: the host name).")
@click.option("--grace", type=float, default=10.0, show_default=True, help="SIGTERM: seconds to finish jobs.")
@redis_option
@namespace_option
def worker(
    flow_files: tuple[Path, ...],
    modules: tuple[str, ...],
    queues: str | None,
    concurrency: int,
    log_level: str | None,
    redis_url: str | None,
    namespace: str,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    alerts_file: Path | None = None,
    node: str | None = None,
    grace: float = 10.0,
) -> None:
    """Run a worker for the tasks that FLOW_FILES use (and any --module)."""
    configure_logging(log_level)
    url = resolve_url(redis_url, os.environ)
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
        tasks = load_tasks(dict.fromkeys(names), folders)
    except TaskLoadError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(exit_codes.IMPORT_ERROR)
    chosen = queues.split(",") if queues else sorted(queue_names or {"default"})
    cluster = ClusterSettings(grace_s=grace)
    if node:
        cluster.node = node
    settings = WorkerSettings(queues=chosen, concurrency=concurrency, cluster=cluster)
    alerts = read_alerts(alerts_file)
    asyncio.run(_work(url, namespace, tasks, settings, metrics_port, metrics_host, alerts))


async def _work(
    url: str,
    namespace: str,
    tasks: dict,  # type: ignore[type-arg]
    settings: WorkerSettings,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    alerts: AlertSettings | None = None,
) -> None:
    redis = connect(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    seen = for_worker(
        redis,
        namespace,
        settings.concurrency,
        metrics_port_base=metrics_port,
        metrics_host=metrics_host,
        alerts=alerts,
    )
    try:
        await seen.run_beside(Worker(redis, tasks, namespace, settings, hooks=seen.hooks).run(stop), stop)
    finally:
        await redis.aclose()


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
