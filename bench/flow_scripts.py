"""A flow run's scripts alone, under callgrind: redis-server instructions a job for each step of a
`root -> c0..cK-1 -> join` run, with no worker and no clock (deterministic, for before/after of a change).

Usage: .venv/bin/python bench/flow_scripts.py [--width 100] [--runs 5] [--batch 100]

A private redis-server under valgrind's callgrind (`hz 1`: its timer, run by the clock, adds little);
the flow of bench/cost.py (`flow_plan`) deployed; each run is submitted (`start_run`), then driven by the
scripts a worker calls, each measured alone: `fetch` of the root, `finish_many` of the root (its end
releases the K children), `fetch` of the children and their `finish_many` (`--batch` a call; the last end
releases the join), the join's fetch and finish (the run's end). Prints each step's instructions a job of
that step and the whole run's a job, and the fixed costs of a call (a fetch that finds nothing, of the one
stream and of a worker's five level streams with its planner's counts for 10 free slots; a finish_many of
nothing; a PING: the connection's own), each over `--fixed-calls` calls (the server's timer, which runs by
the clock, adds ≈ 100k instructions a second under valgrind: over 3 calls it is most of the figure). A
real worker's drain (bench/cost.py --callgrind --only flow) adds its polls, heartbeats and smaller batches.
PYTHONPATH=OTHER/src measures another tree.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cost import flow_plan  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from tqflow.plan import LEVELS  # noqa: E402
from tqflow.runtime.client import Client  # noqa: E402
from tqflow.runtime.priorities import FetchPlanner  # noqa: E402
from tqflow.runtime.runs import now_ms  # noqa: E402
from tqflow.runtime.store import calls, records  # noqa: E402
from tqflow.runtime.worker.settings import DEFAULT_WEIGHTS  # noqa: E402


class Server:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="tqflow-fs-")
        self.sock = f"{self.dir}/r.sock"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.dir}/cg.%p", "redis-server"]
        cmd += ["--port", "0", "--unixsocket", self.sock, "--save", "", "--appendonly", "no", "--hz", "1"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def dump(self) -> int:
        """Instructions since the last dump (a dump zeroes the counters)."""
        pid = self.proc.pid
        before = set(glob.glob(f"{self.dir}/cg.{pid}.*"))
        subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for path in set(glob.glob(f"{self.dir}/cg.{pid}.*")) - before:
                text = Path(path).read_text(errors="replace")
                for line in text.splitlines():
                    if line.startswith("summary:"):
                        os.unlink(path)
                        return int(line.split()[1])
            time.sleep(0.05)
        raise RuntimeError("no callgrind dump")


def for_end(row: list[object]) -> tuple[object, ...]:
    """What a worker sends back at an attempt's end: what its start gave for it (records.run_context's
    StartKnown: "\\0", then stream, entry, run, parent, dependents in place of a lean job's arguments and
    options), in a tree that has it."""
    try:
        _, known = records.run_context(row[10], str(row[0]))  # type: ignore[attr-defined]
    except Exception:  # an older tree
        return ()
    return ("\0", *known) if isinstance(known, tuple) else ()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--fixed-calls", type=int, default=100)
    args = parser.parse_args()
    server = Server()
    try:
        await measure(server, args)
    finally:
        server.proc.kill()  # valgrind's own process: its redis-server goes with it
        server.proc.wait()


async def measure(server: Server, args: argparse.Namespace) -> None:
    for _ in range(600):
        if os.path.exists(server.sock):
            break
        await asyncio.sleep(0.1)
    url = f"unix://{server.sock}"
    client = Client.from_url(url, "fs")
    r = Redis.from_url(url, decode_responses=True)
    for _ in range(100):
        try:
            await r.ping()
            break
        except Exception:
            await asyncio.sleep(0.2)
    await client.deploy(flow_plan(args.width))
    keys, scripts = client.keys, client.scripts
    stream = keys.stream("default", 2)
    for level in range(LEVELS):
        await r.xgroup_create(keys.stream("default", level), "tqflow", id="0", mkstream=True)
    planner = FetchPlanner(keys, ["default"], DEFAULT_WEIGHTS)
    await scripts.ensure_loaded()
    totals: dict[str, int] = defaultdict(int)
    jobs: dict[str, int] = defaultdict(int)

    async def fetch(wanted: int) -> list[list[object]]:
        call = calls.fetch(keys, now_ms(), "w1", "w1:t:", 30000, wanted, [(stream, wanted)])
        return list(await scripts.run(call))

    async def finish(rows: list[list[object]]) -> None:
        now = now_ms()
        attempts = [(row[0], row[1], "succeeded", "J-|0", 0, "", now, row[3], *for_end(row)) for row in rows]
        for i in range(0, len(attempts), args.batch):
            await scripts.run(calls.finish_many(keys, now, 86_400_000, attempts[i : i + args.batch], "w1"))

    async def fetch_levels() -> None:  # a worker's fetch: every level's stream, its planner's counts
        plan = planner.plan(10)
        await scripts.run(calls.fetch(keys, now_ms(), "w1", "w1:t:", 30000, 10, plan))

    async def finish_none() -> None:
        await scripts.run(calls.ScriptCall("finish_many", [keys.job("none")], [now_ms(), 86_400_000, "w1"]))

    fixed_calls: dict[str, Callable[[], Awaitable[object]]] = {
        "(a fetch that finds nothing)": lambda: fetch(10),
        "(… of a worker's 5 level streams)": fetch_levels,
        "(a finish_many of no attempt)": finish_none,
        "(a PING)": r.ping,
    }
    for name, call in fixed_calls.items():
        server.dump()
        for _ in range(args.fixed_calls):
            await call()
        totals[name] += server.dump()
        jobs[name] += args.fixed_calls
    fixed = set(totals)
    for _ in range(args.runs):
        steps: list[tuple[str, int]] = []
        await client.start_run("wide")
        steps.append(("submit", args.width + 2))
        totals["submit"] += server.dump()
        root = await fetch(10)
        totals["fetch root"] += server.dump()
        await finish(root)
        totals["finish root (releases the children)"] += server.dump()
        children = []
        while len(children) < args.width:
            children += await fetch(min(args.batch, args.width - len(children)))
        totals["fetch children"] += server.dump()
        await finish(children)
        totals["finish children (the last releases the join)"] += server.dump()
        join = await fetch(10)
        totals["fetch join"] += server.dump()
        await finish(join)
        totals["finish join (the run ends)"] += server.dump()
        assert len(root) == 1 and len(join) == 1, (root, join)
        jobs["submit"] += args.width + 2
        for name in totals:
            if name.startswith(("fetch root", "finish root", "fetch join", "finish join")):
                jobs[name] += 1
            elif "children" in name:
                jobs[name] += args.width
    per_job_total = sum(v for k, v in totals.items() if k not in fixed) / (args.runs * (args.width + 2))
    for name, value in totals.items():
        print(f"  {name:<46} {value / jobs[name]:>10,.0f} a job of the step")
    print(f"  {'a job of the run, every step':<46} {per_job_total:>10,.0f}")
    await client.close()
    await r.aclose()


if __name__ == "__main__":
    asyncio.run(main())
