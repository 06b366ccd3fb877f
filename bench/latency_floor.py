"""The floor under idle latency: bare hand-offs shaped like the benchmark's, beside tqflow, in one run.

Usage: .venv/bin/python bench/latency_floor.py [--n 500] [--rounds 3] [--only a,b]

Every mode is the benchmark's latency loop (bench/peers/common.py `latency_loop`): a synchronous producer
submits one job, BLPOPs the done list, and submits the next; the worker's body RPUSHes to that list. What
differs is the queue between them, with nothing of a job queue's own (no record, lease, retry, result):

  list-sync      a synchronous worker: BRPOP, then the body's RPUSH with redis-py (huey's and rq's shape)
  list-async     an asyncio worker (uvloop): BRPOP, the body's RPUSH with redis.asyncio
  streams-async  an asyncio worker (uvloop) blocked on XREADGROUP; the body's RPUSH with redis.asyncio, then
                 XACK and XDEL in one pipeline (a Streams queue's least end); the producer XADDs
  streams-noack  the same without the XACK and XDEL (the entry stays pending: no queue would run so; it
                 shows what the end's round trip after the body costs a back-to-back loop)
  list-sync-2, streams-async-2
                 the same with two worker processes, as the harness runs every library (each job wakes
                 the process that has slept longest: what a second process costs a back-to-back loop)
  tqflow         2 `tqrun worker -m bench_tasks -c 100` processes, as bench/harness.py runs them, fed by the
                 harness's own tqflow latency driver (SyncClient.enqueue of `bench_tasks.noop`)
  tqflow-1       the same with one worker process, as the bare modes have

So `streams-async` is what any asyncio worker on Streams pays before its own work, and `list-sync` what a
synchronous worker on lists does: tqflow's gap to the first is its own hand-off, the rest is the shape.
Starts its own redis-server (the one on PATH) on a free port; rounds are interleaved; prints p50/p99 of
each mode a round, then medians over rounds, with the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
QUEUE, STREAM, GROUP = "floor:list", "floor:stream", "floor"
MODES = (
    "list-sync",
    "list-sync-2",
    "list-async",
    "streams-async",
    "streams-async-2",
    "streams-noack",
    "tqflow-1",
    "tqflow",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the bare workers (run as `--worker MODE URL` in a child process) ---------------------------------


def peers_common(url: str) -> Any:
    """bench/peers/common.py (the harness's latency loop and done list) on this run's server: it reads
    PB_URL once, at its import."""
    os.environ["PB_URL"] = url
    for folder in (str(HERE / "peers"), str(HERE)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    import common

    return common


def list_sync_worker(url: str) -> None:
    r, done = redis.Redis.from_url(url), peers_common(url).DONE_KEY
    while True:
        _, x = r.brpop([QUEUE])  # type: ignore[misc]
        r.rpush(done, x)


async def list_async_worker(url: str) -> None:
    import redis.asyncio as aredis

    r, done = aredis.Redis.from_url(url), peers_common(url).DONE_KEY
    while True:
        _, x = await r.brpop([QUEUE])  # type: ignore[misc]
        await r.rpush(done, x)


async def streams_async_worker(url: str, ack: bool = True) -> None:
    import redis.asyncio as aredis

    r, done = aredis.Redis.from_url(url), peers_common(url).DONE_KEY
    with contextlib.suppress(redis.ResponseError):
        await r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    while True:
        reply = await r.xreadgroup(GROUP, f"w{os.getpid()}", {STREAM: ">"}, count=1, block=0)
        for _, entries in reply:
            for entry_id, fields in entries:
                await r.rpush(done, fields[b"x"])
                if not ack:
                    continue
                async with r.pipeline(transaction=False) as pipe:
                    pipe.xack(STREAM, GROUP, entry_id).xdel(STREAM, entry_id)
                    await pipe.execute()


def run_worker(mode: str, url: str) -> None:
    if mode == "list-sync":
        list_sync_worker(url)
        return
    import uvloop

    if mode == "list-async":
        uvloop.run(list_async_worker(url))
    else:
        uvloop.run(streams_async_worker(url, ack=mode == "streams-async"))


# --- the producer -------------------------------------------------------------------------------------


@contextlib.contextmanager
def workers(cmds: list[list[str]], env: dict[str, str]) -> Iterator[None]:
    procs = [subprocess.Popen(cmd, env=env, cwd=HERE, stderr=subprocess.DEVNULL) for cmd in cmds]
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def measure(mode: str, url: str, n: int) -> list[float]:
    r = redis.Redis.from_url(url)
    r.flushdb()
    env = {**os.environ, "PB_URL": url, "PYTHONPATH": f"{HERE}{os.pathsep}{HERE / 'peers'}"}
    if mode.startswith("tqflow"):
        tqrun = str(Path(sys.executable).with_name("tqrun"))
        cmd = [tqrun, "worker", "-m", "bench_tasks", "--redis", url, "--namespace", "bench"]
        cmd += ["-q", "default", "-c", "100", "--log-level", "warning"]
        cmds = [cmd, cmd] if mode == "tqflow" else [cmd]
    else:
        base = mode.removesuffix("-2")
        cmds = [[sys.executable, __file__, "--worker", base, url]] * (2 if mode.endswith("-2") else 1)
    with workers(cmds, env):
        time.sleep(3 if mode.startswith("tqflow") else 1)
        common = peers_common(url)
        if mode.startswith("tqflow"):
            import tqflow_adapter  # its URL is PB_URL's, read at import

            tqflow_adapter.latency(20)
            time.sleep(0.5)
            return tqflow_adapter.latency(n)
        if mode.startswith("streams"):

            def submit(i: int) -> object:
                return r.xadd(STREAM, {"x": i})

        else:

            def submit(i: int) -> object:
                return r.lpush(QUEUE, i)

        common.latency_loop(submit, 20, warmup=0)
        time.sleep(0.5)
        return list(common.latency_loop(submit, n))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(MODES), help="comma-separated modes")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        run_worker(*opts.worker)
        return
    modes = [m for m in opts.only.split(",") if m]
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    rows: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    try:
        time.sleep(0.5)
        for round_ in range(1, opts.rounds + 1):
            for mode in modes:
                ms = measure(mode, url, opts.n)
                rows[mode].append((pct(ms, 50), pct(ms, 99)))
                p50, p99, load = pct(ms, 50), pct(ms, 99), os.getloadavg()[0]
                print(f"round {round_} {mode:14} p50 {p50:.3f}  p99 {p99:.3f} ms  load {load:.2f}")
    finally:
        server.terminate()
        server.wait(10)
    print(f"medians of {opts.rounds} rounds, {opts.n} jobs each (ms):")
    for mode, got in rows.items():
        p50s, p99s = sorted(g[0] for g in got), sorted(g[1] for g in got)
        print(f"  {mode:14} p50 {p50s[len(p50s) // 2]:.3f}  p99 {p99s[len(p99s) // 2]:.3f}")


if __name__ == "__main__":
    main()
