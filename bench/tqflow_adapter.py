"""The tqflow side of the benchmark: the same operations as the peers' modules (peers/pb_*.py).

Jobs are standalone jobs of `bench_tasks.noop` (`enqueue`, `enqueue_many`); the 1 -> k -> 1 fan-out/fan-in
is a generated flow of k + 2 jobs. The producer of the one-by-one enqueue and of the latency loop is the
synchronous `SyncClient` by default, as huey, rq, celery and dramatiq are measured with their synchronous
APIs (PB_TQFLOW_PRODUCER=async measures `await Client.enqueue` instead, as arq, saq, streaq, taskiq are).
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from collections.abc import Awaitable, Callable
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import bench_tasks
from common import DAG_KEY, URL, alatency_loop, alateness, barrier, latency_loop
from redis.asyncio import Redis

from tqflow.compiler import compile_source
from tqflow.dsl.source import Source
from tqflow.plan import FlowPlan, Plan
from tqflow.runtime.client import Client
from tqflow.runtime.sync import SyncClient

HERE = Path(__file__).resolve().parent
NAMESPACE = os.environ.get("PB_NAMESPACE", "bench")
VERSION = version("tqflow")
# 100 jobs at a time per worker process, as the async peers (arq, saq, streaq, taskiq) are run
CONCURRENCY = int(os.environ.get("PB_TQFLOW_CONCURRENCY", "100"))
SYNC_PRODUCER = os.environ.get("PB_TQFLOW_PRODUCER", "sync") == "sync"


def flow_source() -> str:
    """The benchmark's flow as .tqflow text: `fan2`, the template of the fan-out/fan-in."""
    lines = ["use bench_tasks as t", ""]
    lines += ["flow fan2 {", "  job root = t.noop(x=0)"]
    lines += [f"  job c{i} = t.noop(x={i}) {{ after root }}" for i in (1, 2)]
    lines += ["  job join = t.join() { after all_succeeded(c1, c2) }", "}", ""]
    return "\n".join(lines)


def fan_flow(template: FlowPlan, children: int) -> FlowPlan:
    """`fan2` widened to `children` children: the same compiled jobs, more of them (one template, so
    the flow's size is a parameter of the run rather than a 1,002-line source file)."""
    flow = template.model_dump(mode="json")
    child, jobs = flow["jobs"]["c1"], {"root": flow["jobs"]["root"]}
    names = [f"c{i}" for i in range(1, children + 1)]
    for i, name in enumerate(names, start=1):
        jobs[name] = {**copy.deepcopy(child), "name": name, "args": {"x": {"lit": i}}}
    join = flow["jobs"]["join"]
    join["after"] = {"all": [{"status": [name, "succeeded"]} for name in names]}
    join["waits_for"] = names
    jobs["join"] = join
    flow.update(name=f"fan{children}", jobs=jobs, order=["root", *names, "join"])
    return FlowPlan.model_validate(flow)


@cache
def plan(children: int = 1000) -> Plan:
    result = compile_source(Source(str(HERE / "bench.tqflow"), flow_source()))
    if result.plan is None:
        first = result.diagnostics.items[0]
        raise RuntimeError(f"benchmark flows do not compile: line {first.span.line}: {first.message}")
    flows = dict(result.plan.flows)
    flows[f"fan{children}"] = fan_flow(flows["fan2"], children)
    return Plan(source=result.plan.source, flows=flows)


async def _client(children: int = 1000) -> Client:
    client = Client.from_url(URL, NAMESPACE)
    await client.deploy(plan(children))
    return client


def _run(fn: Callable[[Client], Awaitable[Any]], children: int = 1000) -> Any:
    async def go() -> Any:
        client = await _client(children)
        try:
            return await fn(client)
        finally:
            await client.close()

    return asyncio.run(go())


def setup() -> None:
    """Deploy the flows (the harness takes its memory baseline after this)."""

    async def nothing(client: Client) -> None:
        return None

    _run(nothing)


def enqueue(n: int) -> float:
    if SYNC_PRODUCER:
        with SyncClient.from_url(URL, NAMESPACE) as sync_client:
            barrier()
            t0 = time.perf_counter()
            for i in range(n):
                sync_client.enqueue(bench_tasks.noop, x=i)
            return time.perf_counter() - t0

    async def go(client: Client) -> float:
        barrier()
        t0 = time.perf_counter()
        for i in range(n):
            await client.enqueue(bench_tasks.noop, x=i)
        return time.perf_counter() - t0

    return float(_run(go))


def enqueue_bulk(n: int) -> float:
    async def go(client: Client) -> float:
        t0 = time.perf_counter()
        await client.enqueue_many([(bench_tasks.noop, {"x": i}) for i in range(n)])
        return time.perf_counter() - t0

    return float(_run(go))


def latency(n: int) -> list[float]:
    if SYNC_PRODUCER:
        with SyncClient.from_url(URL, NAMESPACE) as sync_client:
            return list(latency_loop(lambda i: sync_client.enqueue(bench_tasks.noop, x=i), n))

    async def go(client: Client) -> list[float]:
        return list(await alatency_loop(lambda i: client.enqueue(bench_tasks.noop, x=i), n))

    return list(_run(go))


def dag(k: int) -> float:
    async def go(client: Client) -> float:
        waiter = Redis.from_url(URL)
        try:
            t0 = time.perf_counter()
            await client.start_run(f"fan{k}")
            if await waiter.blpop([DAG_KEY], timeout=120) is None:
                raise RuntimeError("the join job did not run")
            return time.perf_counter() - t0
        finally:
            await waiter.aclose()

    return float(_run(go, children=k))


def delayed(n: int) -> list[float]:
    async def go(client: Client) -> list[float]:
        return list(await alateness(lambda i, d: client.enqueue(bench_tasks.late, delay=d, x=i), n))

    return list(_run(go))


def workers(procs: int) -> dict[str, Any]:
    cmd = ["tqrun", "worker", "-m", "bench_tasks", "--redis", URL, "--namespace", NAMESPACE]
    cmd += ["-q", "default", "-c", str(CONCURRENCY), "--log-level", "warning"]
    return {"cmds": [cmd] * procs, "desc": f"{procs}x `tqrun worker -m bench_tasks -c {CONCURRENCY}`"}
