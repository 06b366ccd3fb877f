"""Where tqflow's time goes: profiles of the enqueue and the drain, client side and Redis side.

Usage: bench/.venvs/tqflow/bin/python bench/profiling.py [--n 20000]
Writes bench/results/profile-{enqueue,bulk,drain}.txt: a pyinstrument profile of the Python side (the
producer, or one of the two worker processes, run in-process) and the Redis side from INFO
commandstats (diffed, never reset: the server may be shared), i.e. what the Lua scripts cost.
Uses db 9 and the namespace `bench`, like the harness.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "peers"), str(HERE)]
os.environ.setdefault("PB_DB", "9")

import harness  # noqa: E402
import redis  # noqa: E402
import tqflow_adapter  # noqa: E402
from pyinstrument import Profiler  # noqa: E402

RESULTS = HERE / "results"
FLAT = False  # --flat: cProfile (self time per function) instead of pyinstrument


def commandstats(r: redis.Redis) -> dict[str, tuple[int, int]]:
    """command -> (calls, usec), for the whole server."""
    stats: dict[str, Any] = r.info("commandstats")
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for name, v in stats.items()}


def server_side(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], n: int) -> str:
    rows = []
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if calls - c0 > 0:
            rows.append((usec - u0, calls - c0, name))
    rows.sort(reverse=True)
    lines = [f"Redis server time (INFO commandstats diff) for {n} jobs; commands inside Lua count too:"]
    lines += [
        f"  {name:<18} calls/job {calls / n:6.2f}   usec/job {usec / n:8.2f}"
        for usec, calls, name in rows[:15]
    ]
    return "\n".join(lines)


def profile_producer(kind: str, n: int) -> str:
    r = redis.Redis.from_url(tqflow_adapter.URL)
    r.flushdb()
    tqflow_adapter.setup()
    before = commandstats(r)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    secs = tqflow_adapter.enqueue(n) if kind == "enqueue" else tqflow_adapter.enqueue_bulk(n)
    profiler.stop()
    after = commandstats(r)
    head = f"# {kind}: {n} jobs in {secs:.2f} s = {n / secs:,.0f} jobs/s (under the profiler: slower)\n"
    return head + server_side(before, after, n) + "\n\n" + profiler.output_text(unicode=False, color=False)


def profile_drain(n: int) -> str:
    """The queue is filled, one worker runs as a subprocess and one in-process under the profiler."""
    import bench_tasks

    from tqflow.runtime.connection import connect
    from tqflow.runtime.logging import configure_logging
    from tqflow.runtime.worker import Worker, WorkerSettings

    r = redis.Redis.from_url(tqflow_adapter.URL)
    r.flushdb()
    tqflow_adapter.setup()
    tqflow_adapter.enqueue_bulk(n)
    configure_logging("warning")
    cmd = tqflow_adapter.workers(1)["cmds"][0]
    other = subprocess.Popen(
        [str(harness.venv_bin("tqflow") / cmd[0]), *cmd[1:]],
        cwd=HERE / "peers",
        env=harness.env_for("tqflow"),
        start_new_session=True,
    )

    async def work() -> tuple[float, int]:
        connection = connect(tqflow_adapter.URL)
        tasks = {t.name: t for t in (bench_tasks.noop, bench_tasks.late, bench_tasks.join)}
        worker = Worker(
            connection,
            tasks,
            tqflow_adapter.NAMESPACE,
            WorkerSettings(concurrency=tqflow_adapter.CONCURRENCY),
        )
        stop = asyncio.Event()
        job = asyncio.create_task(worker.run(stop))
        t0 = time.perf_counter()
        while await connection.llen(bench_tasks.DONE_KEY) < n:
            await asyncio.sleep(0.01)
        secs = time.perf_counter() - t0
        stop.set()
        await job
        await connection.aclose()
        return secs, worker.completed

    before = commandstats(r)
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    flat = cProfile.Profile()
    try:
        if FLAT:
            flat.enable()
        else:
            profiler.start()
        secs, mine = asyncio.run(work())
    finally:
        flat.disable()
        if profiler.is_running:
            profiler.stop()
        os.killpg(other.pid, 15)
        other.wait(10)
    after = commandstats(r)
    if FLAT:
        text = io.StringIO()
        pstats.Stats(flat, stream=text).sort_stats("tottime").print_stats(35)
        return f"# drain, cProfile of the in-process worker ({mine} of {n} jobs)\n" + text.getvalue()
    head = (
        f"# drain: {n} jobs in {secs:.2f} s = {n / secs:,.0f} jobs/s with 2 workers "
        f"(one profiled in-process, which ran {mine} of them)\n"
    )
    return head + server_side(before, after, n) + "\n\n" + profiler.output_text(unicode=False, color=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--only", default="enqueue,bulk,drain")
    ap.add_argument("--flat", action="store_true", help="drain: cProfile self times instead of pyinstrument")
    args = ap.parse_args()
    global FLAT
    FLAT = args.flat
    RESULTS.mkdir(exist_ok=True)
    for kind in args.only.split(","):
        text = profile_drain(args.n) if kind == "drain" else profile_producer(kind, args.n)
        suffix = "-flat" if FLAT and kind == "drain" else ""
        (RESULTS / f"profile-{kind}{suffix}.txt").write_text(text)
        print(text[:3000])
    redis.Redis.from_url(tqflow_adapter.URL).flushdb()


if __name__ == "__main__":
    main()
