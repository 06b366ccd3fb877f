"""Operating jobs: `tqc jobs …`, `tqc cancel RUN|JOB`, `tqc dlq list|replay`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click

from tqflow.cli import exit_codes
from tqflow.cli.common import namespace_option, open_client, redis_option
from tqflow.cli.listing import json_option, print_items
from tqflow.plan import PRIORITIES
from tqflow.runtime import catalog
from tqflow.runtime.client import Client
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.runs import JobInfo

STATES = ("queued", "scheduled", "running", "retrying", "limited", "waiting", "dead")


def _with_client(redis_url: str | None, namespace: str, action: Callable[[Client], Awaitable[int]]) -> None:
    async def go() -> int:
        async with open_client(redis_url, namespace, embedded_ok=False) as client:
            try:
                return await action(client)
            except LookupError as err:  # JobNotFound, or no such job in the Inspector's view
                click.echo(f"error: {str(err).strip(chr(39))}", err=True)
                return exit_codes.NOT_FOUND
            except ValueError as err:
                click.echo(f"error: {err}", err=True)
                return exit_codes.USAGE

    sys.exit(asyncio.run(go()))


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _row(info: JobInfo) -> str:
    error = f"  {info.error.get('type')}: {info.error.get('message')}" if info.error else ""
    return (
        f"{info.id:<28} {info.state:<10} {info.priority:<8} {info.queue:<12} "
        f"attempt {info.attempt}  {info.task}{error}"
    )


def _print_jobs(jobs: list[JobInfo], as_json: bool) -> None:
    print_items(jobs, as_json, line=_row, as_dict=_as_dict, none="no jobs")


def _as_dict(info: JobInfo) -> dict[str, Any]:
    return {k: getattr(info, k) for k in info.__dataclass_fields__}


@click.group()
def jobs() -> None:
    """List, inspect, reprioritize, cancel and retry jobs."""


def _arguments(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`-a NAME=VALUE` pairs: VALUE is JSON when it parses as JSON (`3`, `true`, `[1]`, `{"a": 1}`),
    else the text itself."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="'-a' / '--arg'")
        try:
            out[name] = json.loads(text)
        except ValueError:
            out[name] = text
    return out


@jobs.command("submit")
@click.argument("task")
@click.option("-a", "--arg", "pairs", multiple=True, help="An argument, NAME=VALUE (VALUE as JSON or text).")
@click.option("--queue", default=None, help="The queue (default: the task's).")
@click.option("--priority", type=click.Choice(PRIORITIES), default=None, help="Default: the task's.")
@click.option("--delay", default=None, help="Run no sooner than this from now (30s, 5m, 1h).")
@click.option("--dead-letter", default=None, help="The dead-letter queue (default: the task's).")
@click.option("--codec", type=click.Choice(["json", "msgpack"]), default=None, help="Default: the task's.")
@click.option("--compression", type=click.Choice(["none", "zlib", "zstd"]), default=None)
@click.option("--depends-on", "depends_on", multiple=True, help="A job id it waits for (repeatable).")
@click.option("--allow-failure", is_flag=True, help="Run once the dependencies ended, whatever their state.")
@click.option(
    "--keep-result/--no-keep-result",
    "keep_result",
    default=None,
    help="--no-keep-result: a success at the first attempt leaves no record (default: the task's).",
)
@click.option(
    "--unregistered",
    is_flag=True,
    help="Queue it even if no worker has registered TASK yet (its policies then are the defaults).",
)
@redis_option
@namespace_option
def jobs_submit(
    task: str,
    pairs: tuple[str, ...],
    queue: str | None,
    priority: str | None,
    delay: str | None,
    dead_letter: str | None,
    codec: str | None,
    compression: str | None,
    depends_on: tuple[str, ...],
    allow_failure: bool,
    keep_result: bool | None,
    unregistered: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Submit a standalone job of TASK (`module.function`, as the workers registered it); prints its id.
    The job takes the task's own queue, priority, retry, timeout and codec unless an option sets them.
    With --depends-on it waits for those jobs, and is skipped if one does not succeed (unless
    --allow-failure). A TASK no worker has registered is refused (a typo would be dead-lettered), unless
    --unregistered."""
    kwargs = _arguments(pairs)

    async def act(client: Client) -> int:
        problem = None if unregistered else await catalog.unregistered(client.redis, client.keys, task)
        if problem is not None:
            click.echo(f"error: {problem} (start a worker for it, or pass --unregistered)", err=True)
            return exit_codes.USAGE
        job = await client.enqueue(
            task,
            queue=queue,
            priority=priority,
            delay=delay,
            dead_letter=dead_letter,
            codec=codec,
            compression=compression,
            depends_on=list(depends_on) or None,
            allow_failure=allow_failure or None,
            keep_result=keep_result,
            **kwargs,
        )
        click.echo(job)
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@jobs.command("list")
@click.option("--queue", default=None, help="Only this queue.")
@click.option("--state", type=click.Choice(STATES), default=None, help="Only jobs in this state.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@redis_option
@namespace_option
def jobs_list(
    queue: str | None, state: str | None, limit: int, as_json: bool, redis_url: str | None, namespace: str
) -> None:
    """Jobs queued, running, waiting for a delay, retry, limiter or their dependencies, or dead-lettered."""

    async def act(client: Client) -> int:
        _print_jobs(await client.list_jobs(queue, state, limit), as_json)
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@jobs.command("show")
@click.argument("job_id")
@json_option
@redis_option
@namespace_option
def jobs_show(job_id: str, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Everything about one job: state, attempts, times, result or error with its traceback."""

    async def act(client: Client) -> int:
        if as_json:  # the schema of GET /api/jobs/{id} (runtime/views.py JobView)
            view = await Inspector(client.redis, client.keys.namespace).job(job_id)
            click.echo(json.dumps(view.model_dump(mode="json"), indent=2))
            return exit_codes.OK
        info = await client.job(job_id)
        view = await Inspector(client.redis, client.keys.namespace).job(job_id)
        click.echo(f"job       {info.id}\ntask      {info.task}\nstate     {info.state}")
        click.echo(f"queue     {info.queue} ({info.priority})\nattempt   {info.attempt}")
        if view.codec:
            click.echo(f"payload   {view.codec}, {view.compression or 'none'}")
        if view.depends_on:
            rule = "whatever they end in" if view.allow_failure else "all must succeed"
            click.echo(f"after     {', '.join(view.depends_on)} ({rule})")
        if info.run_id:
            click.echo(f"run       {info.run_id} (job {info.name})")
        for label, ms in (
            ("enqueued", info.enqueued_ms),
            ("due", info.due_ms),
            ("started", info.started_ms),
            ("finished", info.finished_ms),
        ):
            if ms is not None:
                click.echo(f"{label:<9} {_when(ms)} UTC")
        if info.worker:
            click.echo(f"worker    {info.worker}")
        if info.reason:
            click.echo(f"reason    {info.reason}")
        if info.state == "succeeded":
            click.echo(f"result    {json.dumps(info.result, default=str)}")
        if info.error:
            click.echo(f"error     {info.error.get('type')}: {info.error.get('message')}")
            if info.error.get("traceback"):
                click.echo(str(info.error["traceback"]).rstrip())
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@jobs.command("reprioritize")
@click.argument("job_id")
@click.argument("priority", type=click.Choice(PRIORITIES))
@redis_option
@namespace_option
def jobs_reprioritize(job_id: str, priority: str, redis_url: str | None, namespace: str) -> None:
    """Give a job that has not started another priority."""

    async def act(client: Client) -> int:
        status = await client.reprioritize(job_id, priority)
        click.echo(f"{job_id}: {status} to {priority}")
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@jobs.command("cancel")
@click.argument("job_ids", nargs=-1, required=True)
@redis_option
@namespace_option
def jobs_cancel(job_ids: tuple[str, ...], redis_url: str | None, namespace: str) -> None:
    """Cancel jobs: queued ones are removed, running ones are stopped."""

    async def act(client: Client) -> int:
        for job_id in job_ids:
            click.echo(f"{job_id}: {await client.cancel(job_id)}")
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@jobs.command("retry")
@click.argument("job_ids", nargs=-1, required=True)
@click.option(
    "--dlq", "dlq_name", default=None, help="The dead-letter queue they are in (default: the default one)."
)
@redis_option
@namespace_option
def jobs_retry(job_ids: tuple[str, ...], dlq_name: str | None, redis_url: str | None, namespace: str) -> None:
    """Run dead-lettered jobs again, with a fresh attempt count."""

    async def act(client: Client) -> int:
        statuses = await client.replay(list(job_ids), dlq_name)
        for job_id, status in statuses.items():
            click.echo(f"{job_id}: {status}")
        return exit_codes.OK if all(s == "replayed" for s in statuses.values()) else exit_codes.NOT_FOUND

    _with_client(redis_url, namespace, act)


@click.command("cancel")
@click.argument("target")
@redis_option
@namespace_option
def cancel(target: str, redis_url: str | None, namespace: str) -> None:
    """Cancel a run (every job not yet ended) or a single job."""

    async def act(client: Client) -> int:
        if await client.redis.exists(client.keys.run(target)):
            click.echo(f"run {target}: {await client.cancel_run(target)}")
        else:
            click.echo(f"job {target}: {await client.cancel(target)}")
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@click.group()
def dlq() -> None:
    """The dead-letter queues: jobs that failed their last attempt."""


@dlq.command("list")
@click.option(
    "--queue", "dlq_name", default=None, help="A named dead-letter queue (default: the default one)."
)
@click.option("--task", default=None, help="Only jobs of this task.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@redis_option
@namespace_option
def dlq_list(
    dlq_name: str | None, task: str | None, limit: int, as_json: bool, redis_url: str | None, namespace: str
) -> None:
    """Dead-lettered jobs, newest first, with their errors."""

    async def act(client: Client) -> int:
        _print_jobs(await client.dead_letters(dlq_name, limit, task), as_json)
        if not as_json:
            others = await client.dead_letter_queues()
            if others:
                click.echo(f"named dead-letter queues: {', '.join(others)}")
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@dlq.command("replay")
@click.argument("job_ids", nargs=-1)
@click.option(
    "--queue", "dlq_name", default=None, help="A named dead-letter queue (default: the default one)."
)
@click.option("--task", default=None, help="Replay every dead job of this task.")
@click.option("--all", "replay_all", is_flag=True, help="Replay every job of the dead-letter queue.")
@redis_option
@namespace_option
def dlq_replay(
    job_ids: tuple[str, ...],
    dlq_name: str | None,
    task: str | None,
    replay_all: bool,
    redis_url: str | None,
    namespace: str,
) -> None:
    """Put dead-lettered jobs back on their queues: the JOB_IDS given, those of --task, or --all."""
    if not job_ids and not task and not replay_all:
        raise click.UsageError("give JOB_IDS, --task NAME or --all")

    async def act(client: Client) -> int:
        if job_ids:
            statuses = await client.replay(list(job_ids), dlq_name)
        else:
            statuses = await client.replay_all(dlq_name, task)
        for job_id, status in statuses.items():
            click.echo(f"{job_id}: {status}")
        click.echo(f"replayed {sum(s == 'replayed' for s in statuses.values())} of {len(statuses)}")
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


@dlq.command("purge")
@click.argument("job_ids", nargs=-1)
@click.option(
    "--queue", "dlq_name", default=None, help="A named dead-letter queue (default: the default one)."
)
@click.option("--all", "purge_all", is_flag=True, help="Purge every job of the dead-letter queue.")
@redis_option
@namespace_option
def dlq_purge(
    job_ids: tuple[str, ...], dlq_name: str | None, purge_all: bool, redis_url: str | None, namespace: str
) -> None:
    """Delete dead-lettered jobs for good: the JOB_IDS given, or --all (their runs are pruned as usual)."""
    if not job_ids and not purge_all:
        raise click.UsageError("give JOB_IDS or --all")

    async def act(client: Client) -> int:
        click.echo(f"purged {await client.purge_dead_letters(list(job_ids), dlq_name)}")
        return exit_codes.OK

    _with_client(redis_url, namespace, act)


def register(group: click.Group) -> None:
    for command in (jobs, cancel, dlq):
        group.add_command(command)
