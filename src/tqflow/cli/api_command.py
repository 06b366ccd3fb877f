"""`tqrun api` (REST API, /metrics, dashboard) and the alert options `tqrun` commands share."""

from __future__ import annotations

import os
from pathlib import Path

import click

from tqflow.cli.common import namespace_option, redis_option
from tqflow.runtime.alerts import AlertSettings, load_alert_settings
from tqflow.runtime.connection import resolve_url
from tqflow.runtime.logging import configure_logging

alerts_option = click.option(
    "--alerts",
    "alerts_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TOML file of alert routes (webhook, callback, log); see docs/operations.md.",
)


def read_alerts(path: Path | None) -> AlertSettings | None:
    if path is None:
        return None
    try:
        return load_alert_settings(path)
    except (ValueError, ImportError) as err:
        raise click.UsageError(str(err)) from err


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to bind.")
@click.option("--token", envvar="TQFLOW_API_TOKEN", default=None, help="Bearer token ($TQFLOW_API_TOKEN).")
@click.option("--max-body", type=int, default=1024 * 1024, show_default=True, help="Request size cap, bytes.")
@click.option("--log-level", default=None, help="debug, info, warning or error.")
@alerts_option
@redis_option
@namespace_option
def api(
    host: str,
    port: int,
    token: str | None,
    max_body: int,
    log_level: str | None,
    redis_url: str | None,
    namespace: str,
    alerts_file: Path | None = None,
) -> None:
    """Serve the REST API, /metrics and the web dashboard (a token is required beyond loopback)."""
    from tqflow.runtime.api.server import serve
    from tqflow.runtime.api.settings import ApiSettings

    configure_logging(log_level)
    url = resolve_url(redis_url, os.environ)
    if url is None:
        raise click.UsageError("give --redis URL or set TQFLOW_REDIS_URL (start one with `tqrun server`)")
    settings = ApiSettings(url, namespace, token=token or None, max_body=max_body)
    try:
        settings.check_binding(host)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    click.echo(f"tqflow API and dashboard on http://{host}:{port}/", err=True)
    serve(settings, host, port, read_alerts(alerts_file))
