"""F20, the fault soak: flow runs and standalone jobs at a constant rate for a long while, 1 % of them
poison, while a chaos loop SIGKILLs, SIGSTOPs (past the lease) and SIGTERMs worker processes at random.
A ledger outside Redis (tests/faults/harness.py) counts what ran; at the end it reports lost, duplicated
and stuck jobs:

    python bench/soak_faults.py [--minutes 30] [--rate 20] [--workers 3] [--poison 0.01]
        [--chaos-every 15] [--redis URL] [--seed N]

Without --redis it starts a private server. Not a test (bench): its figures go to docs/guarantees.md (F20)
with the command and the load average. Exit status 1 when anything was lost, committed twice or left stuck.

- lost: a good job or run that did not succeed, or that the ledger never saw finish;
- duplicated: finished more than once; allowed (at-least-once) only when every extra execution was on a
  worker that was SIGKILLed or SIGSTOPped; `duplicates_not_from_faults` must be 0;
- commits_duplicated: an attempt whose finish Redis accepted twice (must be 0: fencing);
- stuck: anything not terminal when the settle time is over, or entries still pending;
- poison: every poison job dead-lettered, within its delivery limit, and no worker stays down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "faults"))
sys.path.insert(0, str(ROOT / "tests" / "faults" / "flows"))

import poison_tasks as pt  # noqa: E402
from harness import Ledger, Workers, fault_plan, pending  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from tqflow.runtime.client import Client  # noqa: E402
from tqflow.runtime.connection import connect  # noqa: E402
from tqflow.runtime.embedded import EmbeddedRedis  # noqa: E402

TERMINAL = {"succeeded", "dead", "cancelled", "skipped", "failed"}
POISON = (pt.raises, pt.hangs, pt.exits, pt.segfaults, pt.hangs_in_process)
MAX_DELIVERIES = 3


class Soak:
    def __init__(self, args: argparse.Namespace, url: str, ledger: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.namespace = f"soak-faults-{os.getpid()}"
        self.redis: Redis = connect(url, namespace=self.namespace)
        self.client = Client(self.redis, self.namespace)
        self.workers = Workers(
            url,
            self.namespace,
            ledger,
            extra=[
                "--tasks",
                "fault_tasks,poison_tasks",
                "--max-deliveries",
                str(MAX_DELIVERIES),
                "--lease",
                "2000",
            ],
        )
        self.termed: set[int] = set()  # pids SIGTERMed (graceful: nothing of theirs may run twice)
        self.faulted: set[int] = set()  # pids SIGKILLed or SIGSTOPped: their in-flight jobs may run twice
        self.runs: dict[str, str] = {}  # run id -> ledger key
        self.jobs: dict[str, str] = {}  # good standalone job id -> ledger key
        self.poison: dict[str, str] = {}  # poison job id -> its task
        self.events: list[str] = []

    async def run(self) -> dict[str, object]:
        await self.client.deploy(fault_plan())
        try:
            for _ in range(self.args.workers):
                self.workers.start()
            await self.workers.ready(self.redis, self.client.keys, self.args.workers, timeout=60)
            began = time.monotonic()
            end = began + self.args.minutes * 60
            supervisor = asyncio.create_task(self.supervise())
            chaos = asyncio.create_task(self.chaos(end))
            await self.submit_until(end)
            await chaos
            settled_in = await self.settle(timeout=self.args.settle)
            await asyncio.sleep(3)  # late finishes of resumed workers arrive (and are refused)
            ledger = Ledger.read(self.workers.ledger)
            result = await self.figures(ledger, time.monotonic() - began, settled_in)
            supervisor.cancel()
            return result
        finally:
            self.workers.stop_all()
            await self.redis.aclose()

    async def submit_until(self, end: float) -> None:
        n = 0
        interval = 1 / self.args.rate
        next_at = time.monotonic()
        while time.monotonic() < end:
            n += 1
            draw = self.rng.random()
            if draw < self.args.poison:
                task = POISON[n % len(POISON)]
                self.poison[await self.client.enqueue(task, key=f"p{n}")] = task.name
            elif draw < 0.5:
                run = await self.client.start_run("fault", {"key": f"k{n}", "ms": self.rng.randint(1, 50)})
                self.runs[run] = f"k{n}"
            else:
                task = pt.good if self.rng.random() < 0.8 else pt.good_in_process
                self.jobs[await self.client.enqueue(task, key=f"g{n}")] = f"g{n}"
            self.restart_dead()
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def supervise(self) -> None:
        while True:
            self.restart_dead()
            await asyncio.sleep(0.2)

    def restart_dead(self) -> None:
        """The supervisor's job: a worker that died (a poison job's os._exit, a SIGKILL) is replaced."""
        for node, proc in list(self.workers.procs.items()):
            if proc.poll() is not None:
                if proc.pid not in self.termed or proc.returncode != 0:
                    self.faulted.add(proc.pid)  # died (a poison job's exit, SIGKILL), not a clean stop
                del self.workers.procs[node]
                self.workers.start()

    async def chaos(self, end: float) -> None:
        while time.monotonic() < end:
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.args.chaos_every)
            alive = self.workers.alive()
            if not alive or time.monotonic() >= end:
                continue
            victim = self.rng.choice(alive)
            fault = self.rng.choice(self.args.faults)
            self.events.append(f"{time.strftime('%H:%M:%S')} {fault} {victim.pid}")
            if fault == "kill":
                self.faulted.add(victim.pid)
                self.workers.signal(victim, signal.SIGKILL)
            elif fault == "stop":  # past the 2 s lease: its jobs are reclaimed, its late finishes refused
                self.faulted.add(victim.pid)
                self.workers.signal(victim, signal.SIGSTOP)
                await asyncio.sleep(4)
                self.workers.signal(victim, signal.SIGCONT)
            else:  # graceful: hands back what it holds, exits 0, is replaced
                self.termed.add(victim.pid)
                self.workers.signal(victim, signal.SIGTERM)
            self.restart_dead()

    async def settle(self, timeout: float) -> float:
        """Wait until everything is terminal, or until nothing has moved for `timeout` seconds."""
        began = moved = time.monotonic()
        left = len(await self.unfinished())
        while left and time.monotonic() - moved < timeout:
            await asyncio.sleep(1)
            now_left = len(await self.unfinished())
            if now_left < left:
                moved = time.monotonic()
            left = now_left
        return time.monotonic() - began

    async def unfinished(self) -> list[str]:
        """Runs still running and jobs not terminal (one pipelined HGET each, 1,000 at a time)."""
        keys = self.client.keys
        wanted = [(run, keys.run(run)) for run in self.runs]
        wanted += [(job, keys.job(job)) for job in [*self.jobs, *self.poison]]
        left = []
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, key in chunk:
                    pipe.hget(key, "state")
                states = await pipe.execute()
            left += [name for (name, _), state in zip(chunk, states, strict=True) if state not in TERMINAL]
        return left

    def ledger_lines(self) -> list[str]:
        path = self.workers.ledger
        return path.read_text().splitlines() if path.exists() else []

    def kind(self, pid: int) -> str:
        return "faulted" if pid in self.faulted else "termed" if pid in self.termed else "live"

    async def figures(self, ledger: Ledger, took: float, settled_in: float) -> dict[str, object]:
        lines = self.ledger_lines()
        begun: dict[str, list[int]] = {}  # job id -> the worker pid of each attempt begun, in order
        committed: Counter[str] = Counter()  # "job#attempt" -> finishes Redis accepted
        for line in lines:
            kind, attempt, pid, _ = line.split()
            if kind == "begin":
                begun.setdefault(attempt.partition("#")[0], []).append(int(pid))
            elif kind == "commit":
                committed[attempt] += 1
        # What ran: job id -> the ledger key its body writes (a run's `work` job writes the run's key).
        bodies = {**self.jobs, **{f"{run}.work": key for run, key in self.runs.items()}}
        outcome: dict[str, tuple[str, dict[str, object] | None]] = {}
        for job in bodies:
            info = await self.client.job(job)
            outcome[job] = (info.state, info.error)
        lost, collateral, dup_allowed, dup_not_allowed = [], [], [], []
        for job, key in bodies.items():
            state, error = outcome[job]
            if state == "succeeded" and key in ledger.done:
                pass
            elif state == "dead" and (error or {}).get("type") == "WorkerLost":
                collateral.append(job)  # its worker died max_deliveries times: in the DLQ, replayable
            else:
                lost.append((job, key, state, error))
            runs = len(ledger.done.get(key, []))
            if runs > 1:  # ran more than once: allowed only if every earlier attempt's worker was faulted
                earlier = begun.get(job, [])[:-1]
                allowed = bool(earlier) and all(pid in self.faulted for pid in earlier)
                (dup_allowed if allowed else dup_not_allowed).append((job, key, begun.get(job)))
        poison = {job: await self.client.job(job) for job in self.poison}
        poison_not_dead = [job for job, info in poison.items() if info.state != "dead"]
        stuck = await self.unfinished()
        pending_left = await pending(self.redis, self.client.keys)
        return {
            "minutes": self.args.minutes,
            "seconds": round(took, 1),
            "rate": self.args.rate,
            "workers": self.args.workers,
            "seed": self.args.seed,
            "faults_by_kind": {
                k: sum(1 for e in self.events if f" {k} " in e) for k in ("kill", "stop", "term")
            },
            "worker_deaths": len(self.faulted),
            "submitted": {"runs": len(self.runs), "jobs": len(self.jobs), "poison": len(self.poison)},
            "lost": len(lost),
            "stuck": len(stuck) + pending_left,
            "attempts_committed_twice": sum(1 for n in committed.values() if n > 1),
            "duplicated_allowed": len(dup_allowed),
            "duplicated_not_allowed": len(dup_not_allowed),
            "dead_lettered_worker_lost": len(collateral),
            "poison_not_dead": len(poison_not_dead),
            "settled_in_s": round(settled_in, 1),
            "load_avg": os.getloadavg(),
            "examples": {
                "lost": lost[:5],
                "duplicated_not_allowed": dup_not_allowed[:5],
                "dead_lettered_worker_lost": collateral[:5],
            },
        }


def verdict(result: dict[str, object]) -> bool:
    return all(
        result[name] == 0
        for name in ("lost", "stuck", "attempts_committed_twice", "duplicated_not_allowed", "poison_not_dead")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=20, help="submissions a second (runs and jobs)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--poison", type=float, default=0.01, help="share of submissions that are poison")
    parser.add_argument("--chaos-every", type=float, default=15, help="seconds between faults, on average")
    parser.add_argument("--faults", type=lambda v: v.split(","), default=["kill", "stop", "term"])
    parser.add_argument("--settle", type=float, default=60, help="give up when nothing moved for this long")
    parser.add_argument("--redis", help="a Redis URL (default: a private server)")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()
    print(f"[F20] seed={args.seed} minutes={args.minutes} rate={args.rate}/s load={os.getloadavg()}")
    server = None if args.redis else EmbeddedRedis()
    url = args.redis or server.start()  # type: ignore[union-attr]
    ledger = Path(f"/tmp/soak-faults-{os.getpid()}.ledger")
    try:
        result = asyncio.run(Soak(args, url, ledger).run())
    finally:
        if server is not None:
            server.stop()
    ok = verdict(result)
    result["verdict"] = "pass" if ok else "FAIL"
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
