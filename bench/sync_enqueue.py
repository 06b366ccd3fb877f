"""One-by-one enqueue from a synchronous producer: the native SyncClient against the old path and the floors.

Usage: .venv/bin/python bench/sync_enqueue.py [--n 20000] [--runs 3] [--url redis://127.0.0.1:6379/13]
       [--profile]   (pyinstrument profile of the native path instead of the table)
       [--instructions]   (the producer's instructions a native call, under valgrind's cachegrind: the
                          difference of two sizes, each in a process of its own; steady under load)
       [--instructions --asyncio]   (the same for `await Client.enqueue`, the `awaited` row's loop)

Each row makes N calls in a loop (no worker running; every job stays queued) against its own namespace
`bench-sync-<pid>`, whose keys are deleted (only those: no FLUSHDB) after every run:

- native `SyncClient.enqueue(noop, x=i)`: redis-py's sync client, one EVALSHA of enqueue.lua a job;
- thread-wrapped (the SyncClient before it was native): the asyncio `Client.enqueue` run on the
  SyncClient's private event loop thread (`run_coroutine_threadsafe(...).result()` each call);
- asyncio `await client.enqueue(noop, x=i)` (what the benchmark's one-by-one row times);
- floor, enqueue.lua: a bare sync redis-py `evalsha` of the same script with arguments built beforehand (the
  round trip plus Redis' time for the script; no Python per job), through redis-py's pool as usual, and
  on a connection held out of the pool (`send_command` + `read_response`, as the native path does);
- floor, trivial script: a bare sync EVALSHA of `return 1` (the round trip alone);
- huey `noop(i)` (the best peer's one-by-one call, as bench/peers/pb_huey.py times it), when huey is
  installed (`.venv/bin/pip install huey`): the same box at the same moment, for the ratio. Its keys
  (`huey.*.bench-sync-<pid>`) are deleted after each run.

Prints, per row, the median of `--runs` runs (interleaved, the order rotated each run) in jobs/s with min
and max, and the producer's median CPU time a job (process time: the client's own cost, which a loaded box
moves much less than the wall clock); then the native row's jobs/s ratio to each other row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_tasks
from worker_cost import summary

from tqflow.runtime.client import Client
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import SyncScripts, command_of
from tqflow.runtime.sync import SyncClient

NAMESPACE = f"bench-sync-{os.getpid()}"


def clean(url: str) -> None:
    r = redis.Redis.from_url(url)
    keys = list(r.scan_iter(match=f"{{{NAMESPACE}}}*", count=1000))
    keys += list(r.scan_iter(match=f"huey.*.{NAMESPACE.replace('-', '')}*", count=1000))
    for start in range(0, len(keys), 500):
        r.unlink(*keys[start : start + 500])
    r.close()


class Timed:
    """Times a loop of `n` calls: jobs/s (wall clock) and the producer's CPU time a job (every thread of
    this process, so the thread-wrapped row's loop thread counts too): the second is what the client
    library itself costs, and moves much less with the load of a shared box than the first."""

    def __init__(self, n: int) -> None:
        self.n, self.result = n, (0.0, 0.0)

    def __enter__(self) -> Timed:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        self.result = (self.n / wall, cpu / self.n * 1e6)


Rate = tuple[float, float]  # jobs/s, producer CPU µs a job


def native(url: str, n: int) -> Rate:
    with SyncClient.from_url(url, NAMESPACE) as client:
        client.enqueue(bench_tasks.noop, x=-1)  # connect and load the script outside the timing
        with Timed(n) as timed:
            for i in range(n):
                client.enqueue(bench_tasks.noop, x=i)
        return timed.result


def thread_wrapped(url: str, n: int) -> Rate:
    with SyncClient.from_url(url, NAMESPACE) as client:
        run, inner = client._run, client.client
        run(inner.enqueue(bench_tasks.noop, x=-1))
        with Timed(n) as timed:
            for i in range(n):
                run(inner.enqueue(bench_tasks.noop, x=i))
        return timed.result


def awaited(url: str, n: int) -> Rate:
    async def go() -> Rate:
        client = Client.from_url(url, NAMESPACE)
        await client.enqueue(bench_tasks.noop, x=-1)
        with Timed(n) as timed:
            for i in range(n):
                await client.enqueue(bench_tasks.noop, x=i)
        await client.close()
        return timed.result

    return asyncio.run(go())


def floor_enqueue_script(url: str, n: int, held: bool = False) -> Rate:
    """The enqueue call as the native path sends it (store/calls.py `enqueue`: a lean job of one spec, its
    own nonce), every command built before the clock starts: the round trip and Redis' time alone."""
    r = redis.Redis.from_url(url, decode_responses=True)
    scripts = SyncScripts(r)
    scripts.ensure_loaded()  # the library (FCALL), or the scripts (EVALSHA) where the server has no functions
    keys, lane = Keys(NAMESPACE), uuid.uuid4().hex[:12]
    spec = ["bench_tasks.noop", "default", 2, ""]
    commands = [
        command_of(
            bool(scripts.functions),
            calls.enqueue(
                keys, lane, uuid.uuid4().hex, [now_ms(), "all", 1_000_000], [4, *spec, f'.0|{{"x":{i}}}']
            ),
        )
        for i in range(n)
    ]
    connection = r.connection_pool.get_connection()
    with Timed(n) as timed:
        if held:
            for command in commands:
                connection.send_command(*command)
                connection.read_response()
        else:
            for command in commands:
                r.execute_command(*command)
    r.connection_pool.release(connection)
    r.close()
    return timed.result


def floor_enqueue_script_held(url: str, n: int) -> Rate:
    return floor_enqueue_script(url, n, held=True)


def floor_trivial(url: str, n: int) -> Rate:
    r = redis.Redis.from_url(url)
    sha = r.script_load("return 1")
    with Timed(n) as timed:
        for _ in range(n):
            r.evalsha(sha, 0)
    r.close()
    return timed.result


def huey_call(url: str, n: int) -> Rate:
    from huey import RedisHuey

    huey = RedisHuey(NAMESPACE.replace("-", ""), url=url)

    @huey.task()  # type: ignore[misc]
    def noop(x: int) -> int:
        return x

    noop(-1)
    with Timed(n) as timed:
        for i in range(n):
            noop(i)
    return timed.result


ROWS: dict[str, Callable[[str, int], Rate]] = {
    "SyncClient.enqueue, native (sync redis-py)": native,
    "SyncClient.enqueue, thread-wrapped (old)": thread_wrapped,
    "await Client.enqueue (asyncio)": awaited,
    "floor: sync EVALSHA enqueue.lua, args prebuilt": floor_enqueue_script,
    "floor: same, on a held connection (no pool)": floor_enqueue_script_held,
    "floor: sync EVALSHA `return 1`": floor_trivial,
}
try:
    import huey as _huey  # noqa: F401

    ROWS["huey noop(i) (peer)"] = huey_call
except ImportError:
    pass


def profile(url: str, n: int) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0001)
    with SyncClient.from_url(url, NAMESPACE) as client:
        client.enqueue(bench_tasks.noop, x=-1)
        profiler.start()
        for i in range(n):
            client.enqueue(bench_tasks.noop, x=i)
        profiler.stop()
    clean(url)
    print(profiler.output_text(unicode=True, color=False, show_all=False))


INSTRUCTION_SIZES = (300, 1800)


def instructions(url: str, sizes: tuple[int, int] = INSTRUCTION_SIZES, asyncio_row: bool = False) -> float:
    """The producer's instructions a native call (or, `asyncio_row`, an awaited asyncio one): that row's
    loop at two sizes, each a process under cachegrind, differenced (start-up and its warm-up call cancel
    out; a count, steady whatever the machine's load)."""
    counts = []
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            out = Path(folder) / f"cg.{n}"
            command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}"]
            command += [sys.executable, __file__, "--child-calls", str(n), "--url", url]
            command += ["--asyncio"] if asyncio_row else []
            subprocess.run(command, capture_output=True, check=True, cwd=Path(__file__).parent)
            counts.append(summary(out))
            clean(url)
    return (counts[1] - counts[0]) / (sizes[1] - sizes[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--url", default="redis://127.0.0.1:6379/13")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--instructions", action="store_true", help="the producer's instructions a native call (valgrind)"
    )
    ap.add_argument("--asyncio", action="store_true", help="with --instructions: the awaited asyncio call")
    ap.add_argument("--child-calls", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_calls:
        (awaited if args.asyncio else native)(args.url, args.child_calls)
        return
    if args.instructions:
        got = [instructions(args.url, asyncio_row=args.asyncio) for _ in range(args.runs)]
        row = "await Client.enqueue (asyncio)" if args.asyncio else "SyncClient.enqueue, native"
        print(
            f"{row}: {sorted(got)[len(got) // 2]:,.0f} instructions a call "
            f"(median of {args.runs}: {', '.join(f'{g:,.0f}' for g in got)}; cachegrind, "
            f"{INSTRUCTION_SIZES[1]} - {INSTRUCTION_SIZES[0]} calls)"
        )
        return
    if args.profile:
        profile(args.url, args.n)
        return
    rates: dict[str, list[Rate]] = {label: [] for label in ROWS}
    order = list(ROWS.items())
    try:
        for run in range(args.runs):
            for label, fn in order[run % len(order) :] + order[: run % len(order)]:  # rotated each run
                rates[label].append(fn(args.url, args.n))
                clean(args.url)
    finally:
        clean(args.url)
    print(f"{args.n:,} one-by-one calls, median of {args.runs} (min-max)")
    print(f"{'':<50} {'jobs/s':>9} {'(min-max)':<17} {'CPU µs/job':>10}")
    medians = {}
    for label, got in rates.items():
        walls, cpus = sorted(r[0] for r in got), sorted(r[1] for r in got)
        medians[label] = walls[len(walls) // 2]
        span = f"({walls[0]:,.0f}-{walls[-1]:,.0f})"
        print(f"{label:<50} {medians[label]:>9,.0f} {span:<17} {cpus[len(cpus) // 2]:>10.1f}")
    native_rate = medians[next(iter(ROWS))]
    for label, rate in list(medians.items())[1:]:
        print(f"native / {label}: {native_rate / rate:.2f}x")


if __name__ == "__main__":
    main()
