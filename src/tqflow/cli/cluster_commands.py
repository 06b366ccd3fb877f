"""`tqc workers`: the worker registry, with the leader and what each worker runs; `tqc partitions`: how
many partitions the namespace is made of (runtime/partitions.py), and making them."""

from __future__ import annotations

import asyncio
import json

import click

from tqflow.cli.common import namespace_option, open_client, redis_option
from tqflow.runtime.cluster.leader import current_leader
from tqflow.runtime.cluster.registry import WorkerRecord, list_workers
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import hash_tag


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per worker.")
@redis_option
@namespace_option
def workers(as_json: bool, redis_url: str | None, namespace: str) -> None:
    """List the workers: node, pid, queues, concurrency, version, last heartbeat, jobs held, leader."""

    async def go() -> None:
        async with open_client(redis_url, namespace, embedded_ok=False) as client:
            keys = ClusterKeys(client.keys)
            records = await list_workers(client.redis, keys)
            leader = await current_leader(client.redis, keys)
        leader_name = leader[0] if leader else None
        if as_json:
            for r in records:
                click.echo(json.dumps({**r.__dict__, "leader": r.name == leader_name}))
            return
        if not records:
            click.echo("no workers")
            return
        click.echo(_table(records, leader_name, leader[1] if leader else 0))

    asyncio.run(go())


def _table(records: list[WorkerRecord], leader: str | None, epoch: int) -> str:
    now = now_ms()
    rows = [("WORKER", "NODE", "PID", "QUEUES", "RUNNING", "VERSION", "HEARTBEAT", "STATE")]
    for r in records:
        state = (f"leader (epoch {epoch})" if r.name == leader else "alive") if r.alive else "dead"
        rows.append(
            (
                r.name,
                r.node,
                str(r.pid),
                ",".join(r.queues),
                f"{len(r.jobs)}/{r.concurrency}",
                r.version,
                f"{max(0, now - r.heartbeat_ms) / 1000:.1f}s ago",
                state,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for r in records:
        if r.jobs:
            lines.append(f"{r.name} runs: {', '.join(r.jobs[:10])}{' …' if len(r.jobs) > 10 else ''}")
    return "\n".join(lines)


@click.command()
@click.option(
    "--create",
    "count",
    type=int,
    default=None,
    help="Make the namespace one of N partitions (fixed once made; before its first standalone job).",
)
@click.option("--json", "as_json", is_flag=True, help="The count and each partition's hash tag as JSON.")
@redis_option
@namespace_option
def partitions(count: int | None, as_json: bool, redis_url: str | None, namespace: str) -> None:
    """Show the namespace's partitions (standalone jobs spread over them; docs/cluster.md), or --create N."""
    from tqflow.runtime.partitions import PartitionError

    async def go() -> int:
        async with open_client(redis_url, namespace, embedded_ok=False) as client:
            if count is None:
                return await client.partition_count()
            try:
                return await client.create_partitions(count)
            except PartitionError as err:
                raise click.UsageError(str(err)) from err

    made = asyncio.run(go())
    tags = [hash_tag(namespace, k) for k in range(made)] if made > 1 else [hash_tag(namespace)]
    if as_json:
        click.echo(json.dumps({"namespace": namespace, "partitions": made, "tags": tags}))
        return
    click.echo(f"namespace {namespace}: {made} partition{'s' if made > 1 else ''} ({', '.join(tags)})")


def register(group: click.Group) -> None:
    group.add_command(workers)
    group.add_command(partitions)
