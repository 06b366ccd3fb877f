"""What a worker's Python costs per no-op job: instructions (valgrind) and CPU µs, start-up cancelled out.

Usage: .venv/bin/python bench/worker_cost.py [--sizes 1000,4000] [--concurrency 100] [--flow K]
       [--tool cachegrind|callgrind|none] [--log-level warning] [--keep DIR] [--no-cpu]

Starts a private `redis-server` (runtime/embedded.py) on a Unix socket. For each size N it bulk-enqueues N
no-op jobs (bench/cost_tasks.py, from this process; `--flow K`: N // (K + 2) runs of cost.py's flow `root ->
c0..c(K-1) -> join` started instead, the sizes rounded down to whole runs), then runs one worker in a
process of its own, set up as `tqrun worker` sets up its processes (its logging at --log-level, the hooks
`for_worker` gives it: job logs, attempt history, counters; its GC thresholds and event loop), until it
ended N attempts; then it stops. Under `--tool` (cachegrind by default, `--cache-sim=no`) that process's
instructions are counted whole, start-up and shutdown included, so the figure printed is the difference of
two sizes: (I(N2) - I(N1)) / (N2 - N1) instructions per job, what one more job costs, independent of the
machine's load. Without valgrind the same drains also give CPU µs per job from the process's CPU time (the
same difference; CPU time is steady under load, but still varies more than instructions).

The worker checks whether it is done every 0.2 s: the checks, its heartbeat and its background loops
cost instructions per second of wall time, which valgrind stretches about 50-fold; at these sizes that
is a few hundred instructions a job. `--keep DIR` keeps valgrind's output files (cg_annotate /
callgrind_annotate them: with callgrind, `--dump-instr=no`, the profile of where a job's instructions go,
in the interpreter's C functions). `--profile TOP` adds a cProfile of the larger drain (the Python functions
by self time; the profiler slows every call, so read its shares, not its seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DONE_CHECK_S = 0.2
NAMESPACE = "wcost"


def child(url: str, jobs: int, concurrency: int, log_level: str) -> None:
    """The measured process: one worker as `tqrun worker` runs it, until it ended `jobs` attempts."""
    from cost_tasks import noop

    from tqflow.runtime import eventloop, supervisor
    from tqflow.runtime.connection import connect
    from tqflow.runtime.logging import configure_logging
    from tqflow.runtime.observability import for_worker
    from tqflow.runtime.worker import Worker, WorkerSettings

    configure_logging(log_level)
    gc.set_threshold(*supervisor.GC_THRESHOLDS)
    tasks = {noop.name: noop}

    async def work() -> dict[str, Any]:
        redis = connect(url, namespace=NAMESPACE)
        stop = asyncio.Event()
        seen = for_worker(redis, NAMESPACE, concurrency, tasks=list(tasks))
        worker = Worker(redis, tasks, NAMESPACE, WorkerSettings(concurrency=concurrency), seen.hooks)
        cpu0 = time.process_time()
        running = asyncio.create_task(seen.run_beside(worker.run(stop), stop))
        while worker.completed < jobs:
            if running.done():
                running.result()
                raise RuntimeError(f"the worker stopped after {worker.completed} of {jobs} jobs")
            await asyncio.sleep(DONE_CHECK_S)
        cpu = time.process_time() - cpu0
        stop.set()
        await running
        await redis.aclose()
        return {"cpu_s": cpu, "completed": worker.completed}

    print(json.dumps(eventloop.run(work())))


def enqueue(url: str, jobs: int, flow: int = 0) -> None:
    """`jobs` no-op jobs bulk-enqueued; with `flow` K, jobs // (K + 2) runs of cost.py's flow
    `root -> c0..c(K-1) -> join` started instead (its children are released by the root's end)."""
    from cost_tasks import noop
    from redis import Redis

    from tqflow.runtime.client import Client

    Redis.from_url(url).flushall()

    async def submit() -> None:
        client = Client.from_url(url, NAMESPACE)
        if flow:
            from cost import flow_plan

            await client.deploy(flow_plan(flow))
            for _ in range(jobs // (flow + 2)):
                await client.start_run("wide")
            await client.close()
            return
        for start in range(0, jobs, 10_000):
            chunk = [(noop, {"x": i}) for i in range(start, min(jobs, start + 10_000))]
            await client.enqueue_many(chunk)
        await client.close()

    asyncio.run(submit())


def summary(path: Path) -> int:
    """The instructions a cachegrind or callgrind output file counts (its `summary:` line)."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"{path} has no summary line")


def drain(url: str, jobs: int, args: argparse.Namespace, tool: str, out: Path | None) -> dict[str, Any]:
    """Enqueue `jobs`, drain them in a child process (under `tool` unless "none"); its figures."""
    enqueue(url, jobs, args.flow)
    if args.flow:
        jobs = jobs // (args.flow + 2) * (args.flow + 2)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", url, str(jobs)]
    command += ["--concurrency", str(args.concurrency), "--log-level", args.log_level]
    if tool == "cprofile":
        assert out is not None
        command[1:1] = ["-m", "cProfile", "-o", str(out)]
    elif tool != "none":
        assert out is not None
        flags = ["--cache-sim=no"] if tool == "cachegrind" else ["--dump-instr=no"]
        command = ["valgrind", f"--tool={tool}", *flags, f"--{tool}-out-file={out}", *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the worker process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if out is not None and tool != "cprofile":
        figures["instructions"] = summary(out)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,4000", help="two job counts; their difference is measured")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--tool", choices=("cachegrind", "callgrind", "none"), default="cachegrind")
    parser.add_argument("--log-level", default="warning", help="the worker's, as `tqrun worker --log-level`")
    parser.add_argument("--keep", default="", help="keep valgrind's output files in this directory")
    parser.add_argument(
        "--flow", type=int, default=0, metavar="K", help="runs of cost.py's 1 -> K -> 1 flow, not bulk jobs"
    )
    parser.add_argument("--no-cpu", action="store_true", help="no drains without valgrind (CPU µs per job)")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="TOP", help="also a cProfile of the larger drain: TOP rows"
    )
    parser.add_argument("--child", nargs=2, metavar=("URL", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.concurrency, args.log_level)
        return
    small, big = (int(s) for s in args.sizes.split(","))
    if big <= small:
        raise SystemExit("--sizes: the second must be larger than the first")
    if args.tool != "none" and shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on PATH (or use --tool none)")
    sys.path.insert(0, str(HERE))
    from tqflow.runtime.embedded import EmbeddedRedis

    keep = Path(args.keep) if args.keep else None
    folder = keep or Path(tempfile.mkdtemp(prefix="tqflow-wcost-"))
    folder.mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis()
    url = server.start()
    load = os.getloadavg()
    try:
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")
        what = f"runs of the 1 -> {args.flow} -> 1 flow" if args.flow else "no-op jobs bulk-enqueued"
        print(f"worker: concurrency {args.concurrency}, log level {args.log_level}, {what}")
        if args.tool != "none":
            counted = {}
            for jobs in (small, big):
                out = folder / f"{args.tool}.{jobs}.out"
                counted[jobs] = drain(url, jobs, args, args.tool, out)["instructions"]
                print(f"  {jobs:>6} jobs: {counted[jobs]:>15,} instructions ({args.tool}, the whole process)")
            each = (counted[big] - counted[small]) / (big - small)
            print(f"instructions per job ({args.tool}, ({big} - {small}) difference): {each:,.0f}")
        if not args.no_cpu:
            cpu = {jobs: drain(url, jobs, args, "none", None)["cpu_s"] for jobs in (small, big)}
            each_us = (cpu[big] - cpu[small]) * 1e6 / (big - small)
            print(f"worker CPU µs per job (process time, ({big} - {small}) difference): {each_us:.1f}")
            print(f"  ({small}: {cpu[small]:.3f} s, {big}: {cpu[big]:.3f} s of CPU while draining)")
        if args.profile:
            out = folder / "cprofile.out"
            drain(url, big, args, "cprofile", out)
            print(f"cProfile of the {big}-job drain (whole process; self time, slowed by the profiler):")
            text = io.StringIO()
            pstats.Stats(str(out), stream=text).sort_stats("tottime").print_stats(args.profile)
            print(text.getvalue())
        load = os.getloadavg()
        print(f"load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        server.stop()
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
