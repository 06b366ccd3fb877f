"""The tqflow side of the benchmark: the same operations as the peers' modules (peers/pb_*.py).

Until the standalone job API (`Client.enqueue`, `enqueue_many`) exists, a "job" is a run of a
one-job flow: `Client.start_run("one", {"x": i})`. The 1 -> k -> 1 fan-out/fan-in is a generated
flow of k + 2 jobs; delayed jobs use one generated flow per 0.1 s delay bucket (`delay` is static
in a plan). When `Client.enqueue` is present the adapter uses it instead (see `JOB_API`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import time
from collections.abc import Awaitable, Callable
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import bench_tasks
from common import DAG_KEY, URL, alatency_loop, alateness, barrier
from redis.asyncio import Redis

from tqflow.compiler import compile_source
from tqflow.compiler.plan import FlowPlan, Plan
from tqflow.dsl.source import Source
from tqflow.runtime.client import Client
from tqflow.runtime.runs import job_records, new_run_id, now_ms

HERE = Path(__file__).resolve().parent
NAMESPACE = os.environ.get("PB_NAMESPACE", "bench")
VERSION = version("tqflow")
DELAY_BUCKETS_MS = range(0, 5_001, 100)
JOB_API = hasattr(Client, "enqueue") and os.environ.get("PB_TQFLOW_FLOWS") != "1"
CONCURRENCY = int(os.environ.get("PB_TQFLOW_CONCURRENCY", "10"))
PAGE = 1000  # jobs per pipelined page in the bulk fallback


def flow_source() -> str:
    """The benchmark's flows as .tqflow text; `fan2` is the template of the fan-out/fan-in."""
    lines = ["use bench_tasks as t", ""]
    lines += ["flow one {", "  params {", "    x: Int = 0", "  }", "  job run = t.noop(x=params.x)", "}", ""]
    lines += ["flow fan2 {", "  job root = t.noop(x=0)"]
    lines += [f"  job c{i} = t.noop(x={i}) {{ after root }}" for i in (1, 2)]
    lines += ["  job join = t.join() { after all_succeeded(c1, c2) }", "}", ""]
    for ms in DELAY_BUCKETS_MS:
        lines += [f"flow late_{ms} {{", "  params {", "    x: Int = 0", "  }"]
        lines += [
            f"  job run = t.late(x=params.x) {{ delay {ms}ms }}" if ms else "  job run = t.late(x=params.x)"
        ]
        lines += ["}", ""]
    return "\n".join(lines)


def fan_flow(template: FlowPlan, children: int) -> FlowPlan:
    """`fan2` widened to `children` children: the same compiled jobs, more of them.

    (Generated from the plan because the parser's keyword trial-feed copies its whole value stack
    per keyword, so compiling 1,002 `job` lines takes about a minute.)"""
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


async def submit(client: Client, i: int) -> str:
    if JOB_API:
        return str(await client.enqueue(bench_tasks.noop, x=i))  # type: ignore[attr-defined]
    return await client.start_run("one", {"x": i})


def enqueue(n: int) -> float:
    async def go(client: Client) -> float:
        barrier()
        t0 = time.perf_counter()
        for i in range(n):
            await submit(client, i)
        return time.perf_counter() - t0

    return float(_run(go))


def enqueue_bulk(n: int) -> float:
    async def go(client: Client) -> float:
        t0 = time.perf_counter()
        if JOB_API:
            await client.enqueue_many([(bench_tasks.noop, {"x": i}) for i in range(n)])
        else:
            await _pipelined_runs(client, n)
        return time.perf_counter() - t0

    return float(_run(go))


async def _pipelined_runs(client: Client, n: int) -> None:
    """Bulk without a bulk API: the submit script of n one-job runs, pipelined in pages.

    The same records `start_run` writes (params resolved here: the flow's one Int parameter)."""
    _, flow = await client.flow("one")
    records = job_records(flow)
    jobs = json.dumps(records)
    base = {"flow": flow.name, "version": "1", "plan_id": flow.id}
    for start in range(0, n, PAGE):
        async with client.redis.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + PAGE)):
                run_id = new_run_id()
                fields = json.dumps({**base, "params": json.dumps({"x": i})})
                await client.scripts.submit_run(
                    keys=[client.keys.run(run_id)],
                    args=[client.keys.prefix, now_ms(), run_id, fields, jobs],
                    client=pipe,
                )
            await pipe.execute()


def latency(n: int) -> list[float]:
    async def go(client: Client) -> list[float]:
        return list(await alatency_loop(lambda i: submit(client, i), n))

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
    async def late(client: Client, i: int, seconds: float) -> str:
        ms = round(seconds * 1000)
        if JOB_API:
            return str(await client.enqueue(bench_tasks.late, delay=seconds, x=i))  # type: ignore[attr-defined]
        return await client.start_run(f"late_{ms}", {"x": i})

    async def go(client: Client) -> list[float]:
        return list(await alateness(lambda i, d: late(client, i, d), n))

    return list(_run(go))


enqueue_bulk_label = "enqueue_many" if JOB_API else "pipelined submit_run scripts (no bulk API yet)"


def workers(procs: int) -> dict[str, Any]:
    cmd = ["tqrun", "worker", "-m", "bench_tasks", "--redis", URL, "--namespace", NAMESPACE]
    # -c 10 (tqrun's default) drained fastest here; at -c 50 the worker exhausts redis-py 8's asyncio
    # pool (100 connections by default) and dies with MaxConnectionsError (see docs/benchmarks.md)
    cmd += ["-q", "default", "-c", str(CONCURRENCY), "--log-level", "warning"]
    return {"cmds": [cmd] * procs, "desc": f"{procs}x `tqrun worker -m bench_tasks -c {CONCURRENCY}`"}
