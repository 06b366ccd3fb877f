"""The benchmark's 1 -> K -> 1 flow alone, for tqflow, as bench/harness.py's `dag` step measures it.

Usage: .venv/bin/python bench/dag_only.py [--children 1000] [--runs 5] [--procs 2]

A private redis-server on a Unix socket, `--procs` workers started as the harness starts them
(`tqrun worker -m bench_tasks -q default -c 100`, tqflow_adapter.workers), one warm-up run, then
`--runs` runs of tqflow_adapter.dag(K): from `start_run` until the join's task pushed to the DAG key,
each timed by the adapter in its own process as the harness's driver does. Prints each run's seconds,
the median, the load average around them, Redis' CPU (INFO cpu) and the workers' (/proc) a run, and the
CPU floor those give a run: (Redis + workers) ÷ the cores, as bench/drain_floor.py computes a drain's.
(Under callgrind the 1,000-child run does not end within the adapter's 120 s: bench/flow_scripts.py counts
a run's scripts.)
PYTHONPATH=OTHER/src measures another tree's tqflow with this venv (the workers inherit it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from drain_floor import cpu_s  # bench/ is this script's folder, so on the path

HERE = Path(__file__).resolve().parent


def timeline(r: redis.Redis, children: int) -> str:
    """When the last run's jobs started and ended (their records' ms), from the run's creation."""
    ns = os.environ.get("PB_NAMESPACE", "bench")
    run_id = r.zrange(f"{{{ns}}}:runs", -1, -1)[0].decode()
    created = int(r.hget(f"{{{ns}}}:run:{run_id}", "created") or 0)
    names = ["root", *(f"c{i}" for i in range(1, children + 1)), "join"]
    rows = [r.hmget(f"{{{ns}}}:job:{run_id}.{name}", "enqueued", "started", "finished") for name in names]
    at = [[int(v) - created if v else -1 for v in row] for row in rows]
    kids = at[1:-1]

    def span(i: int) -> str:
        return f"{min(k[i] for k in kids)}-{max(k[i] for k in kids)}"

    root, join = at[0], at[-1]
    return (
        f"root queued {root[0]} started {root[1]} ended {root[2]}; children queued {span(0)}, started"
        f" {span(1)}, ended {span(2)}; join queued {join[0]} started {join[1]} ended {join[2]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tqflow-dag-"))
    sock = tmp / "redis.sock"
    server = [shutil.which("redis-server") or "redis-server", "--port", "0", "--unixsocket", str(sock)]
    server += ["--save", "", "--appendonly", "no", "--dir", str(tmp)]
    redis_proc = subprocess.Popen(server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"unix://{sock}?db=9"
    env = {
        **os.environ,
        "PB_URL": url,
        "PB_DB": "9",
        "PYTHONPATH": f"{os.environ.get('PYTHONPATH', '')}:{HERE}:{HERE / 'peers'}",
    }
    workers: list[subprocess.Popen[bytes]] = []
    try:
        r = redis.Redis(unix_socket_path=str(sock), db=9)
        for _ in range(600):
            try:
                r.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.1)
        adapter = f"import sys, json, tqflow_adapter as a; print(json.dumps(a.dag({args.children})))"
        setup = (
            f"import tqflow_adapter as a; a._run(lambda c: __import__('asyncio').sleep(0), {args.children})"
        )
        bindir = Path(sys.executable).parent
        subprocess.run([sys.executable, "-c", setup], env=env, check=True, cwd=HERE / "peers")
        sys.path[:0] = [str(HERE), str(HERE / "peers")]
        os.environ.update(PB_URL=url, PB_DB="9")
        import tqflow_adapter

        for cmd in tqflow_adapter.workers(args.procs)["cmds"]:
            cmd = [str(bindir / cmd[0]), *cmd[1:]]
            workers.append(subprocess.Popen(cmd, env=env, cwd=HERE / "peers"))
        time.sleep(3.0)  # the workers have booted and block on their streams

        def one() -> float:
            out = subprocess.run([sys.executable, "-c", adapter], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"the dag run failed: {out.stderr[-2000:]}")
            return float(json.loads(out.stdout.strip().splitlines()[-1]))

        one()  # warm-up
        cpu = r.info("cpu")
        cpu0 = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
        own0 = sum(cpu_s(w.pid) for w in workers)
        load0 = os.getloadavg()[0]
        secs = [one() for _ in range(args.runs)]
        cpu = r.info("cpu")
        cpu1 = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
        own1 = sum(cpu_s(w.pid) for w in workers)
        load1 = os.getloadavg()[0]
        redis_ms, workers_ms = (cpu1 - cpu0) / args.runs * 1000, (own1 - own0) / args.runs * 1000
        floor_ms = (redis_ms + workers_ms) / (os.cpu_count() or 1)
        print(f"children {args.children}, {args.procs} worker processes, load {load0:.2f} -> {load1:.2f}")
        print("runs (s): " + " ".join(f"{s:.3f}" for s in secs) + f"; median {statistics.median(secs):.3f}")
        print(f"Redis CPU a run: {redis_ms:.1f} ms")
        print(
            f"workers' CPU a run: {workers_ms:.1f} ms; CPU floor of a run: {floor_ms:.1f} ms "
            f"(the median run is {statistics.median(secs) * 1000 / floor_ms:.2f}x it)"
        )
        print("the last run, ms from its creation: " + timeline(r, args.children))
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=10)
        redis_proc.terminate()
        redis_proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
