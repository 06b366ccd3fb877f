"""What a limit adds to a job inside Redis, in instructions: load-independent (issue 16's ≤ 2 µs target).

Usage: .venv/bin/python bench/limit_instructions.py [--small 1000] [--large 4000] [--batch 100] [--ipus N]

A private redis-server runs under valgrind's callgrind (bench/cost.py's `Callgrind`: `valgrind` and
`callgrind_control` on PATH). Each scenario bulk-enqueues its jobs and drains them with the worker's two
calls alone (fetch.lua for `--batch` jobs, then one finish_many.lua: cost.py's `--drain scripts`), once with
`--small` and once with `--large` jobs; the instructions per job are the difference of the two runs divided
by the difference of their sizes, so what does not grow with the jobs (start-up, script loading, the first
call's allocations) cancels. Scenarios:
- `unlimited`: plain lean jobs;
- `concurrency`: each with a concurrency limit of `--batch` slots, so every fetch fills the semaphore
  (`--batch` holders at once, the layout's worst case below a zset's 128-member listpack);
- `rate`: each with a rate limit that always has a token;
- `options`: unlimited, each with options about as long as a limit's (a dead-letter queue's name): what
  carrying options costs (the entry's `o`, sent back at the end and kept in the record), apart from the
  limit's own work.
It prints each scenario's instructions per job and what a limit adds over `unlimited`, and an estimate in
µs: the instructions divided by `--ipus` (redis-server's instructions per µs of its CPU), which by default
is measured here, on a second private redis-server not under valgrind, from the `unlimited` scenario's
`INFO cpu` (best of 3 runs of `--large` jobs: the only figure here that the load changes, printed with the
load average).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cost.py and its tasks, run from anywhere

import cost

from tqflow.runtime.client import Client
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.limits import Limiter, Rate

SCENARIOS = ("unlimited", "options", "concurrency", "rate")
# `options`: an unlimited job carrying options about as long as a limit's (the entry's `o`, sent back at its
# end and kept in its record), so what a limit adds splits into carrying options and the limit itself
DEAD_LETTER = "instr-dead-letters"


@dataclass
class Measured:
    name: str
    small: int  # instructions of the small run (enqueue and drain)
    large: int
    small_enqueue: int  # … of which the enqueue
    large_enqueue: int

    def per_job(self, small_n: int, large_n: int) -> float:
        return (self.large - self.small) / (large_n - small_n)

    def enqueue_per_job(self, small_n: int, large_n: int) -> float:
        return (self.large_enqueue - self.small_enqueue) / (large_n - small_n)


def limit_of(name: str, batch: int) -> Limiter | None:
    if name == "concurrency":
        return Limiter("instr-slots", concurrency=batch)
    if name == "rate":
        return Limiter("instr-tokens", rate=Rate(10_000_000, per="s"))
    return None


async def run(url: str, meter: cost.Meter, n: int, batch: int, name: str) -> cost.Figures:
    """cost.py's `bulk` scenario (enqueue_many, then fetch + finish_many), with this scenario's options."""
    namespace = "instr"
    options: dict[str, Any] = {"limit": limit_of(name, batch)}
    if name == "options":
        options = {"dead_letter": DEAD_LETTER}
    meter.start()
    client = Client.from_url(url, namespace)
    for start in range(0, n, 10_000):
        await client.enqueue_many(
            [(cost.noop, {"x": i}) for i in range(start, min(n, start + 10_000))], **options
        )
    await client.close()
    meter.mark()
    r = Redis.from_url(url, decode_responses=True)
    await cost.drain_scripts(r, namespace, n, batch)
    await r.aclose()
    figures = meter.stop(name, n)
    redis.Redis.from_url(url).flushall()
    return figures


async def instructions(args: argparse.Namespace) -> list[Measured]:
    callgrind = cost.Callgrind()
    os.environ["TQFLOW_REDIS_SERVER"] = str(callgrind.wrapper)
    server = EmbeddedRedis()
    url = server.start(timeout=120)
    try:
        assert server.process is not None
        callgrind.pid = server.process.pid  # the wrapper exec's valgrind: the same process
        meter = cost.Meter(redis.Redis.from_url(url, decode_responses=True), callgrind=callgrind)
        await run(url, meter, 200, args.batch, "concurrency")  # warm-up: scripts loaded, imports done
        rows = []
        for name in args.only:
            small = await run(url, meter, args.small, args.batch, name)
            large = await run(url, meter, args.large, args.batch, name)
            rows.append(
                Measured(
                    name,
                    round(small.instructions * args.small),
                    round(large.instructions * args.large),
                    round(small.enqueue_instructions * args.small),
                    round(large.enqueue_instructions * args.large),
                )
            )
        return rows
    finally:
        server.stop()
        del os.environ["TQFLOW_REDIS_SERVER"]
        shutil.rmtree(callgrind.dir, ignore_errors=True)


async def instructions_per_us(args: argparse.Namespace, per_job: float) -> float:
    """redis-server's instructions per µs of CPU here: `per_job` (unlimited) over its INFO cpu µs a job."""
    server = EmbeddedRedis()
    url = server.start()
    try:
        meter = cost.Meter(redis.Redis.from_url(url, decode_responses=True))
        await run(url, meter, 500, args.batch, "unlimited")
        best = min([(await run(url, meter, args.large, args.batch, "unlimited")).redis_us for _ in range(3)])
        return per_job / best
    finally:
        server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000, help="jobs of the small run")
    parser.add_argument("--large", type=int, default=4_000, help="jobs of the large run")
    parser.add_argument("--batch", type=int, default=100, help="jobs a fetch; the concurrency limit's slots")
    parser.add_argument("--ipus", type=float, default=0.0, help="instructions per µs (default: measured)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args()
    args.only = [s for s in args.only.split(",") if s]
    if not set(args.only) <= set(SCENARIOS) or "unlimited" not in args.only:
        raise SystemExit(f"--only: a subset of {','.join(SCENARIOS)} with unlimited")
    if args.large <= args.small:
        raise SystemExit("--large must be more jobs than --small")
    cost.DRAIN = "scripts"
    cost.configure_logging("warning")
    import tqflow

    print(f"tqflow from {Path(tqflow.__file__).parent}")
    rows = await instructions(args)
    per_job = {m.name: m.per_job(args.small, args.large) for m in rows}
    load = os.getloadavg()
    ipus = args.ipus or await instructions_per_us(args, per_job["unlimited"])
    source = "given" if args.ipus else f"measured, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    sizes = f"{args.large} - {args.small} jobs"
    print(f"redis-server instructions per job ({sizes}; callgrind, load-independent):")
    enqueue = {m.name: m.enqueue_per_job(args.small, args.large) for m in rows}
    for m in rows:
        line = f"  {m.name:<12} {per_job[m.name]:>10,.0f}"
        line += f" (enqueue {enqueue[m.name]:>8,.0f}, drain {per_job[m.name] - enqueue[m.name]:>8,.0f})"
        if m.name != "unlimited":
            extra = per_job[m.name] - per_job["unlimited"]
            extra_enqueue = enqueue[m.name] - enqueue["unlimited"]
            line += f"  extra {extra:>+9,.0f} ≈ {extra / ipus:+.2f} µs"
            line += f" (enqueue {extra_enqueue:+,.0f}, drain {extra - extra_enqueue:+,.0f})"
        print(line)
    print(f"(µs at {ipus:,.0f} instructions per µs, {source})")


if __name__ == "__main__":
    asyncio.run(main())
