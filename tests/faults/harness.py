"""The fault harness: worker processes we start, signal and always kill; a ledger outside Redis and
the checker that counts lost and duplicated jobs. Every run is seeded and prints its seed."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from tqflow.compiler import compile_file
from tqflow.plan import Plan
from tqflow.runtime.client import Client
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys

HERE = Path(__file__).parent
FULL = os.environ.get("TQFLOW_FAULT_SCALE") == "full"


def fault_plan() -> Plan:
    result = compile_file(HERE / "flows" / "fault.tqflow")
    assert result.plan is not None, [d.message for d in result.diagnostics]
    return result.plan


def seeded(name: str) -> random.Random:
    seed = int(os.environ.get("TQFLOW_FAULT_SEED") or random.randrange(1 << 30))
    print(f"\n[{name}] seed={seed} scale={'full' if FULL else 'slice'} (TQFLOW_FAULT_SEED={seed} to replay)")
    return random.Random(seed)


@dataclass
class Workers:
    """Worker processes of one test. `stop_all` SIGKILLs whatever is left; call it in `finally`."""

    redis_url: str
    namespace: str
    ledger: Path
    extra: list[str] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    killed: set[int] = field(default_factory=set)  # pids whose in-flight attempts may run twice
    signalled: dict[int, float] = field(default_factory=dict)  # pid -> when it got its (last) signal
    count: int = 0
    stderr: Path | None = None  # where the workers' stderr goes (default: discarded)

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        self.count += 1
        node = f"node{self.count}"
        env = {**os.environ, "TQFLOW_LEDGER": str(self.ledger)}
        command = [sys.executable, str(HERE / "fault_worker.py"), self.redis_url, self.namespace, node]
        err = self.stderr.open("a") if self.stderr else subprocess.DEVNULL
        proc = subprocess.Popen([*command, *self.extra, *extra], env=env, stderr=err)
        self.procs[node] = proc
        return proc

    async def ready(self, redis: Redis, keys: Keys, count: int, timeout: float = 30) -> None:
        """Wait until `count` workers are registered (their heartbeat records exist)."""
        cluster = ClusterKeys(keys)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = await redis.zrange(cluster.workers, 0, -1)
            if sum([await redis.exists(cluster.worker(n)) for n in names]) >= count:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{count} workers did not register within {timeout}s")

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs.values() if p.poll() is None]

    def signal(self, proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        if sig == signal.SIGKILL:
            self.killed.add(proc.pid)
        self.signalled[proc.pid] = time.time()
        os.kill(proc.pid, sig)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait()


async def submit(
    client: Client, count: int, rng: random.Random, ms: tuple[int, int], first: int = 0
) -> dict[str, str]:
    """Start `count` runs of the fault flow (keys k<first>…), 50 at a time; returns run id -> key."""
    keys = [f"k{i}" for i in range(first, first + count)]
    naps = [str(rng.randint(*ms)) for _ in keys]
    runs: dict[str, str] = {}
    for start in range(0, count, 50):
        chunk = keys[start : start + 50]
        ids = await asyncio.gather(
            *(
                client.start_run("fault", {"key": k, "ms": n})
                for k, n in zip(chunk, naps[start:], strict=False)
            )
        )
        runs.update(zip(ids, chunk, strict=True))
    return runs


@dataclass
class Ledger:
    starts: dict[str, list[tuple[int, float]]]
    done: dict[str, list[tuple[int, float]]]
    children: dict[str, list[int]]  # the `after` job's key -> the pids that ran it
    commits: Counter[str]  # job id -> finishes Redis accepted
    stale: Counter[str]
    begins: dict[str, tuple[int, float]]  # "job#attempt" -> (pid, time) of the attempt's start
    committed: dict[str, float]  # "job#attempt" whose finish Redis accepted -> when

    @staticmethod
    def read(path: Path) -> Ledger:
        starts, done, children = defaultdict(list), defaultdict(list), defaultdict(list)
        commits, stale = Counter[str](), Counter[str]()
        begins: dict[str, tuple[int, float]] = {}
        committed: dict[str, float] = {}
        for line in path.read_text().splitlines() if path.exists() else []:
            kind, key, pid, at = line.split()
            if kind == "start":
                starts[key].append((int(pid), float(at)))
            elif kind == "done":
                done[key].append((int(pid), float(at)))
            elif kind == "interrupted":  # a thread job stopped by an interrupt (its run ended there)
                pass
            elif kind == "child":
                children[key].append(int(pid))
            elif kind == "begin":
                begins[key] = (int(pid), float(at))
            elif kind == "commit":
                commits[key.partition("#")[0]] += 1
                committed[key] = float(at)
            else:
                stale[key.partition("#")[0]] += 1
        return Ledger(dict(starts), dict(done), dict(children), commits, stale, begins, committed)


@dataclass
class Figures:
    submitted: int
    rerun: int  # started more than once (their first attempt was on a killed, stopped or paused worker)
    lost: int
    duplicated: int
    duplicates_not_from_killed: int
    children_rerun: int  # the run's second job ran more than once (its first run was on a killed worker)
    children_duplicated: int  # ... and more than once on workers that were not killed
    commits_duplicated: int
    stale_refused: int
    pending_left: int

    def line(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.__dict__.items())


async def check(
    redis: Redis,
    keys: Keys,
    runs: dict[str, str],
    ledger: Ledger,
    killed: set[int],
    states: dict[str, str] | None = None,
) -> Figures:
    """Lost: submitted but never done (or its run not succeeded). Duplicated: done more than once;
    a duplicate is allowed only when all but one of its executions ran on a killed worker. `runs` maps
    run ids (or, with their end `states` given, standalone job ids) to the ledger's keys."""
    if states is None:
        states = {run: await redis.hget(keys.run(run), "state") for run in runs}
    lost = sum(1 for run, key in runs.items() if states[run] != "succeeded" or key not in ledger.done)
    duplicated = not_killed = 0
    for key in runs.values():
        pids = [pid for pid, _ in ledger.done.get(key, [])]
        if len(pids) > 1:
            duplicated += 1
            if sum(1 for pid in pids if pid not in killed) > 1:
                not_killed += 1
    return Figures(
        submitted=len(runs),
        rerun=sum(1 for key in runs.values() if len(ledger.starts.get(key, [])) > 1),
        lost=lost,
        duplicated=duplicated,
        duplicates_not_from_killed=not_killed,
        children_rerun=sum(1 for key in runs.values() if len(ledger.children.get(key, [])) > 1),
        children_duplicated=sum(
            1 for key in runs.values() if sum(pid not in killed for pid in ledger.children.get(key, [])) > 1
        ),
        commits_duplicated=sum(1 for n in ledger.commits.values() if n > 1),
        stale_refused=sum(ledger.stale.values()),
        pending_left=await pending(redis, keys),
    )


async def pending(redis: Redis, keys: Keys) -> int:
    total = 0
    for stream in keys.streams("default"):
        if await redis.exists(stream):
            total += int((await redis.xpending(stream, keys.group))["pending"])
    return total


async def wait_all(redis: Redis, keys: Keys, runs: dict[str, str], timeout: float) -> float:
    """Wait until every run is terminal; returns when that happened (monotonic)."""
    deadline = time.monotonic() + timeout
    left = set(runs)
    while left and time.monotonic() < deadline:
        async with redis.pipeline(transaction=False) as pipe:
            for run in left:
                pipe.hget(keys.run(run), "state")
            states = await pipe.execute()
        left = {run for run, state in zip(list(left), states, strict=True) if state in (None, "running")}
        if left:
            await asyncio.sleep(0.1)
    return time.monotonic()


def restart_delays(ledger: Ledger, signalled: dict[int, float]) -> list[float]:
    """For each job whose attempt was on a signalled worker: seconds from the signal to its next start."""
    delays = []
    for starts in ledger.starts.values():
        for (pid, at), (_, again) in itertools.pairwise(starts):
            if pid in signalled and at <= signalled[pid] <= again:
                delays.append(again - signalled[pid])
    return delays
