"""Flow control, measured against a real Redis with real worker processes (`tqrun worker`), each check made
from a ledger file the jobs append to (bench/limit_tasks.py), never from the limiter's own state.

Usage: .venv/bin/python bench/limits.py rate  [--seconds 60] [--workers 4]
       .venv/bin/python bench/limits.py churn [--seconds 60] [--workers 4] [--kill-every 3]
       .venv/bin/python bench/limits.py fair  [--jobs 600] [--workers 4]

- rate: a limiter of 100/s (burst 100) over 4 worker processes, with far more jobs queued than it admits;
  jobs started per second over the run, after the first second (the burst), and their mean.
- churn: concurrency(3) over 4 worker processes running 200 ms jobs while one worker is SIGKILLed every few
  seconds and restarted; the most jobs running at once, from the ledger (a killed worker's job ends when
  its process died).
- fair: three fair keys with weights 3:2:1, each with more jobs than the window, on 4 workers; the shares of
  the starts while all three keys still had jobs waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tqflow.runtime.client import Client
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.limits import Limiter, Rate

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import limit_tasks  # noqa: E402 - from bench/

NAMESPACE = "limits-bench"


def new_ledger(kind: str) -> str:
    fd, path = tempfile.mkstemp(prefix=f"tqflow-{kind}-")
    os.close(fd)
    return path


def start_worker(url: str, ledger: str, concurrency: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TQFLOW_LIMIT_LEDGER": ledger,
        "PYTHONPATH": f"{HERE}:{os.environ.get('PYTHONPATH', '')}",
    }
    tqrun = str(Path(sys.executable).parent / "tqrun")
    cmd = [tqrun, "worker", "-m", "limit_tasks", "-q", "limits", "-c", str(concurrency), "--redis", url]
    cmd += ["--namespace", NAMESPACE, "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_ledger(path: str) -> list[tuple[str, str, int, float]]:
    rows = []
    for line in Path(path).read_text().splitlines():
        kind, label, pid, at = line.split()
        rows.append((kind, label, int(pid), float(at)))
    return rows


async def rate(url: str, seconds: int, workers: int) -> None:
    ledger = new_ledger("rate")
    client = Client.from_url(url, NAMESPACE)
    api = Limiter("bench-api", rate=Rate(100, per="s"))
    procs = [start_worker(url, ledger, 20) for _ in range(workers)]
    time.sleep(2)  # the workers are up
    # a producer above the limit (150/s, in tens every 1/15 s) for the whole run: the limiter, not the
    # producer or the workers, sets the pace
    ids = []
    began = time.monotonic()
    batch = 0
    while time.monotonic() - began < seconds:
        ids += await client.enqueue_many(
            [(limit_tasks.tick, {"label": f"{batch}.{i}"}) for i in range(10)], limit=api
        )
        batch += 1
        await asyncio.sleep(max(0.0, began + batch / 15 - time.monotonic()))
    time.sleep(2)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(30)
    # admissions: when the limiter let each job go: its grant (`granted`, a job that waited) or its start
    # (one admitted at once), from the records, beside the ledger's task starts (which add the pickup)
    admitted = []
    for i in ids:
        granted, started = await client.redis.hmget(client.keys.job(i), "granted", "started")
        if granted or started:
            admitted.append(int(granted or started) / 1000)
    admitted.sort()
    await client.close()
    if admitted:
        zero = admitted[0]
        by_second = Counter(int(at - zero) for at in admitted)
        steady = [by_second[s] for s in range(1, seconds)]
        print(f"admissions (limiter): second 0 {by_second[0]}; seconds 1-{seconds - 1}: ", end="")
        print(f"mean {sum(steady) / len(steady):.2f}/s, min {min(steady)}, max {max(steady)}")
        # the token bucket's own bound: in any window of w seconds at most burst + rate * w admissions
        for w in (1.0, 10.0):
            most, j = 0, 0
            for i, at in enumerate(admitted):
                while admitted[j] < at - w:
                    j += 1
                most = max(most, i - j + 1)
            print(f"most admissions in any {w:g} s window: {most} (the bucket allows {100 + 100 * w:g})")
    starts = sorted(at for kind, _, _, at in read_ledger(ledger) if kind == "start")
    first = starts[0]
    per_second = Counter(int(at - first) for at in starts)
    full = [per_second[s] for s in range(1, seconds)]  # second 0 holds the burst
    print(f"load average {os.getloadavg()[0]:.2f}; {workers} workers; {len(starts)} starts over {seconds} s")
    print(f"task starts (ledger): second 0 (the burst of 100 and the first refills): {per_second[0]}")
    mean = (sum(full)) / len(full)
    print(f"seconds 1-{seconds - 1}: mean {mean:.2f}/s, min {min(full)}, max {max(full)}")
    window = [at for at in starts if first + 1 <= at < first + seconds]
    print(f"admitted from second 1 to {seconds}: {len(window)} = {len(window) / (seconds - 1):.2f}/s")
    os.unlink(ledger)


async def churn(url: str, seconds: int, workers: int, kill_every: float) -> None:
    ledger = new_ledger("churn")
    client = Client.from_url(url, NAMESPACE)
    db = Limiter("bench-db", concurrency=3)
    n = int(seconds / 0.2 * 3) + 200
    await client.enqueue_many(
        [(limit_tasks.hold, {"label": str(i), "seconds": 0.2}) for i in range(n)], limit=db
    )
    procs = [start_worker(url, ledger, 10) for _ in range(workers)]
    kills: dict[int, float] = {}
    rng = random.Random(16)
    deadline = time.time() + seconds
    while time.time() < deadline:
        time.sleep(kill_every)
        victim = rng.randrange(len(procs))
        kills[procs[victim].pid] = time.time()
        procs[victim].kill()  # SIGKILL: no hand-back, no finish; its slots come back with its lease
        procs[victim].wait()
        procs[victim] = start_worker(url, ledger, 10)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(60)
    await client.close()
    rows = read_ledger(ledger)
    open_: dict[tuple[str, int], float] = {}
    events: list[tuple[float, int]] = []
    for kind, label, pid, at in rows:
        if kind == "start":
            open_[(label, pid)] = at
            events.append((at, 1))
        else:
            open_.pop((label, pid), None)
            events.append((at, -1))
    for (_, pid), at in open_.items():  # killed while running: it ran until its process died
        events.append((kills.get(pid, at), -1))
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        running += step
        peak = max(peak, running)
    done = sum(1 for kind, *_ in rows if kind == "end")
    print(f"load average {os.getloadavg()[0]:.2f}; {workers} workers, {len(kills)} SIGKILLs in {seconds} s")
    started = sum(1 for kind, *_ in rows if kind == "start")
    print(f"jobs started {started}, ended {done}, killed mid-job {len(open_)}")
    print(f"most running at once (ledger): {peak} (limit 3)")
    os.unlink(ledger)


async def fair(url: str, jobs: int, workers: int) -> None:
    ledger = new_ledger("fair")
    client = Client.from_url(url, NAMESPACE)
    for key, weight in (("a", 3), ("b", 2), ("c", 1)):
        await client.enqueue_many(
            [(limit_tasks.hold, {"label": key, "seconds": 0.01}) for _ in range(jobs)],
            fair_key=key,
            weight=weight,
        )
    procs = [start_worker(url, ledger, 4) for _ in range(workers)]
    try:
        while sum(1 for line in Path(ledger).read_text().splitlines() if line.startswith("end")) < 3 * jobs:
            time.sleep(1)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
    await client.close()
    order = [
        label for kind, label, _, _ in sorted(read_ledger(ledger), key=lambda r: r[3]) if kind == "start"
    ]
    # contested: until the first key runs out (c: jobs / (1/6) of the starts)
    last_c = max(i for i, label in enumerate(order) if label == "c")
    ends = {k: max(i for i, label in enumerate(order) if label == k) for k in "abc"}
    contested = order[: min(ends.values()) + 1]
    shares = Counter(contested)
    total = len(contested)
    print(
        f"load average {os.getloadavg()[0]:.2f}; {workers} workers; {3 * jobs} jobs; contested window {total}"
    )
    print(
        "shares: "
        + ", ".join(f"{k} {100 * shares[k] / total:.1f}%" for k in "abc")
        + " (target 50/33.3/16.7)"
    )
    print(f"(last c job started at position {last_c})")
    os.unlink(ledger)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["rate", "churn", "fair"])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--jobs", type=int, default=600)
    args = parser.parse_args()
    server = EmbeddedRedis()
    url = server.start()
    try:
        if args.scenario == "rate":
            await rate(url, args.seconds, args.workers)
        elif args.scenario == "churn":
            await churn(url, args.seconds, args.workers, args.kill_every)
        else:
            await fair(url, args.jobs, args.workers)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
