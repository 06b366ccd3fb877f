"""`tqc workers`: the worker registry, with the leader and what each worker runs."""

from __future__ import annotations

import asyncio
import json

import click

from tqflow.cli.common import namespace_option, open_client, redis_option
from tqflow.runtime.cluster.leader import current_leader
from tqflow.runtime.cluster.registry import WorkerRecord, list_workers
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store.cluster_keys import ClusterKeys


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


def register(group: click.Group) -> None:
    group.add_command(workers)
