"""The drain against its CPU floor (issue 12): 2 `tqrun worker` processes drain the benchmark's job (its body
an awaited `RPUSH`, bench_tasks.noop, as the harness's drain), and the window between 10 % and 90 % done gives
jobs/s, Redis CPU µs a job (`INFO cpu`) and the workers' CPU µs a job (/proc), so the floor is
2 cores ÷ (Redis + workers) µs a job and the drain's share of it is printed.

    bench/.venvs/tqflow/bin/python bench/drain_floor.py [--jobs 40000] [--workers 2] [--concurrency 100]
        [--url redis://127.0.0.1:6379/11]

Starts its own redis-server on a Unix socket (runtime/embedded.py), or with `--url` uses that Redis over
its own transport, as bench/harness.py's drain does (TCP to 127.0.0.1:6379): only the namespace `drain`
and the task's done list are written there, and deleted before and after (nothing is flushed; `INFO cpu` is
the whole server's, so nothing else may use it meanwhile). It also prints the rate from the first job done
to the last, the way the harness times a drain. Not a test: figures go to docs/benchmarks.md with the load
average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--url", default="", help="this Redis instead of a private one on a Unix socket")
    args = parser.parse_args()
    from tqflow.runtime.embedded import EmbeddedRedis

    server = None if args.url else EmbeddedRedis()
    url = args.url or server.start()  # type: ignore[union-attr]
    os.environ["PB_URL"] = url  # the task body's RPUSH goes to the same server
    try:
        clean(url)
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs, {url}")
        print(drain(url, args.jobs, args.workers, args.concurrency))
    finally:
        clean(url)
        if server is not None:
            server.stop()


def cpu_s(pid: int) -> float:
    """utime + stime of a live process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clean(url: str) -> None:
    """Delete what a drain wrote: the namespace's keys and the task's done list (only those)."""
    import bench_tasks

    r = redis.Redis.from_url(url)
    keys = [*r.scan_iter(match="{drain}*", count=1000), bench_tasks.DONE_KEY]
    for start in range(0, len(keys), 500):
        r.unlink(*keys[start : start + 500])
    r.close()


def drain(url: str, jobs: int, workers: int, concurrency: int) -> str:
    import bench_tasks

    from tqflow.runtime.client import Client

    async def enqueue() -> None:
        client = Client.from_url(url, "drain")
        for start in range(0, jobs, 1000):
            calls = [(bench_tasks.noop, {"x": x}) for x in range(start, min(start + 1000, jobs))]
            await client.enqueue_many(calls, atomic=False)
        await client.close()

    asyncio.run(enqueue())
    direct = redis.Redis.from_url(url)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    command = [
        sys.executable,
        "-m",
        "tqflow.cli.tqrun",
        "worker",
        "-m",
        "bench_tasks",
        "-c",
        str(concurrency),
    ]
    command += ["--redis", url, "--namespace", "drain", "--log-level", "warning"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(workers)]

    def sample() -> tuple[float, int, float, float]:
        info = direct.info("cpu")
        own = sum(cpu_s(p.pid) for p in procs)
        return (
            time.perf_counter(),
            int(direct.llen(bench_tasks.DONE_KEY)),
            info["used_cpu_sys"] + info["used_cpu_user"],
            own,
        )

    spawned = time.perf_counter()
    try:
        first = last = started = ended = None
        while ended is None:
            now = sample()
            if started is None and now[1] > 0:
                started = now
            if first is None and now[1] >= jobs * 0.1:
                first = now
            if last is None and now[1] >= jobs * 0.9:
                last = now
            if now[1] >= jobs:
                ended = now
            time.sleep(0.002)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        direct.close()
    assert first is not None and last is not None and started is not None
    whole = (ended[1] - started[1]) / (ended[0] - started[0])  # bench/harness.py's wait_drain: first to last
    done = last[1] - first[1]
    rate = done / (last[0] - first[0])
    redis_us, worker_us = 1e6 * (last[2] - first[2]) / done, 1e6 * (last[3] - first[3]) / done
    floor = (os.cpu_count() or 1) * 1e6 / (redis_us + worker_us)
    return (
        f"drain {rate:,.0f} jobs/s; Redis {redis_us:.1f} µs a job, workers {worker_us:.1f} µs a job; "
        f"CPU floor {floor:,.0f} jobs/s; the drain is {100 * rate / floor:.0f} % of it\n"
        f"first job done {started[0] - spawned:.2f} s after the spawn; from the first done to the last "
        f"(as the harness times a drain) {whole:,.0f} jobs/s"
    )


if __name__ == "__main__":
    main()
