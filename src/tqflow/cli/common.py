"""What the commands share: options, Redis connection (or the embedded server), printing."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tqflow.cli import exit_codes
from tqflow.compiler import CompileResult, compile_file
from tqflow.dsl.diagnostics import render_all

if TYPE_CHECKING:  # imported where a command opens a client: `tqc check` and `tqc fmt` never need them
    from tqflow.runtime.client import Client
    from tqflow.runtime.embedded import EmbeddedRedis

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)

redis_option = click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    default=None,
    help="Redis URL (default: $TQFLOW_REDIS_URL, else an embedded server).",
)
namespace_option = click.option(
    "--namespace",
    default=lambda: os.environ.get("TQFLOW_NAMESPACE", "tqflow"),
    show_default="tqflow",
    help="Key namespace of the deployment.",
)


def compile_or_exit(path: Path) -> CompileResult:
    result = compile_file(path)
    if len(result.diagnostics):
        click.echo(render_all(result.diagnostics), err=True)
    if not result.ok:
        sys.exit(exit_codes.COMPILE_ERROR)
    return result


@contextlib.asynccontextmanager
async def open_client(redis_url: str | None, namespace: str, *, embedded_ok: bool) -> AsyncIterator[Client]:
    """A client on the given Redis, or on a private embedded server when none is given and allowed."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from tqflow.runtime.client import Client
    from tqflow.runtime.connection import RedisUrlError, redact, resolve_url
    from tqflow.runtime.embedded import EmbeddedRedis, RedisServerNotFound
    from tqflow.runtime.replication import NotReplicated

    try:
        url = resolve_url(redis_url, os.environ)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    server: EmbeddedRedis | None = None
    if url is None:
        if not embedded_ok:
            raise click.UsageError("give --redis URL or set TQFLOW_REDIS_URL")
        try:
            server = EmbeddedRedis()
            url = server.start()
        except (RedisServerNotFound, RuntimeError) as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(exit_codes.CONNECT_ERROR)
        click.echo("using an embedded Redis server (no --redis URL given)", err=True)
    client = Client.from_url(url, namespace)
    try:
        await client.redis.ping()
    except (RedisConnectionError, OSError, RedisUrlError) as err:
        await client.close()
        if server:
            server.stop()
        if isinstance(err, RedisUrlError):
            click.echo(f"error: {err}", err=True)
        else:
            click.echo(f"error: cannot reach Redis at {redact(url)}: {err}", err=True)
        sys.exit(exit_codes.CONNECT_ERROR)
    try:
        yield client
    except NotReplicated as err:  # done, not known to be replicated: the ids, and what to do
        click.echo(f"error: {err}", err=True)
        for job_id in err.ids:
            click.echo(job_id)
        sys.exit(exit_codes.NOT_REPLICATED)
    finally:
        await client.close()
        if server:
            server.stop()


def parse_params(values: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        params[name.strip()] = value
    return params
