"""One namespace on 1 shard against 3 (issue 13): Redis CPU per job on each shard, and the drain.

    python bench/shards.py [--jobs 20000] [--workers 2] [--concurrency 50] [--cases 1x1,1x3,3x3]

Each case `SxP` starts a private Redis Cluster of S masters (runtime/servers.py) and a namespace of P
partitions (P=1: a namespace without partitions, the control slot alone; with S=3 the namespace is picked
so that its partitions are on 3 different masters). Then, per case:
1. enqueue `--jobs` lean jobs of a task that does nothing (`enqueue_many`, best effort, 1,000 a call), no
   worker running: enqueue jobs/s, and each master's Redis CPU for it;
2. start `--workers` worker processes (`tqrun worker -m shard_tasks`) and wait until every job ended:
   the drain in jobs/s between 10 % and 90 % done (so process start-up is not counted), and each master's
   Redis CPU (INFO cpu: used_cpu_user + used_cpu_sys) for the whole drain, per job.
Not a test (figures go to docs/benchmarks.md with the load average). Keep a run under 2 minutes while
others use the machine: the defaults take about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from redis.crc import key_slot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import shard_tasks  # noqa: E402

from tqflow.runtime.client import Client  # noqa: E402
from tqflow.runtime.inspect import Inspector  # noqa: E402
from tqflow.runtime.servers import LocalCluster  # noqa: E402


def cpu_of(cluster: LocalCluster, masters: int) -> list[float]:
    """Each master's Redis CPU seconds so far (user + system)."""
    found = []
    for server in cluster.servers[:masters]:
        with server.client() as node:
            info: Any = node.info("cpu")
            found.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
    return found


def spread_namespace(cluster: LocalCluster, partitions: int, masters: int) -> str:
    """A namespace whose partitions cover min(partitions, masters) masters."""
    want = min(partitions, masters)
    while True:
        namespace = f"shards-{uuid.uuid4().hex[:8]}"
        if partitions == 1:
            return namespace
        tags = [f"{{{namespace}.{k}}}" for k in range(partitions)]
        if len({cluster.owner(key_slot(t.encode())).port for t in tags}) >= want:
            return namespace


async def remaining(inspector: Inspector) -> int:
    overview = await inspector.queues()
    return sum(q.waiting + q.running for q in overview.queues) + overview.delayed


async def one_case(
    masters: int, partitions: int, jobs: int, workers: int, concurrency: int
) -> dict[str, Any]:
    with LocalCluster(masters=masters) as cluster:
        namespace = spread_namespace(cluster, partitions, masters)
        client = Client.from_url(cluster.url, namespace)
        inspector = Inspector(client.redis, namespace)
        try:
            if partitions > 1:
                await client.create_partitions(partitions)
            before = cpu_of(cluster, masters)
            started = time.perf_counter()
            for start in range(0, jobs, 1000):
                calls = [shard_tasks.nothing.call(x=i) for i in range(start, min(jobs, start + 1000))]
                await client.enqueue_many(calls, atomic=False)
            enqueue_s = time.perf_counter() - started
            after_enqueue = cpu_of(cluster, masters)
            env = {
                **os.environ,
                "PYTHONPATH": f"{ROOT / 'bench'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            }
            command = [sys.executable, "-m", "tqflow.cli.tqrun", "worker", "-m", "shard_tasks"]
            command += ["--redis", cluster.url, "--namespace", namespace, "-c", str(concurrency)]
            command += ["--log-level", "warning"]
            procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(workers)]
            marks: dict[float, float] = {}
            try:
                t0 = time.perf_counter()
                while True:
                    left = await remaining(inspector)
                    done = (jobs - left) / jobs
                    now = time.perf_counter()
                    for mark in (0.1, 0.9):
                        if done >= mark and mark not in marks:
                            marks[mark] = now
                    if left == 0:
                        break
                    if now - t0 > 600:
                        raise TimeoutError(f"{left} jobs left after 600 s")
                    await asyncio.sleep(0.1)
                drained = cpu_of(cluster, masters)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(30)
            steady = (0.8 * jobs) / max(1e-9, marks[0.9] - marks[0.1])
            per_shard_enqueue = [a - b for a, b in zip(after_enqueue, before, strict=True)]
            per_shard_drain = [a - b for a, b in zip(drained, after_enqueue, strict=True)]
            return {
                "case": f"{masters} shard(s), {partitions} partition(s)",
                "jobs": jobs,
                "enqueue_jobs_per_s": round(jobs / enqueue_s),
                "drain_jobs_per_s": round(steady),
                "enqueue_redis_cpu_us_per_job": [round(c / jobs * 1e6, 1) for c in per_shard_enqueue],
                "drain_redis_cpu_us_per_job": [round(c / jobs * 1e6, 1) for c in per_shard_drain],
                "drain_redis_cpu_us_per_job_total": round(sum(per_shard_drain) / jobs * 1e6, 1),
                "drain_redis_cpu_share_per_shard": [
                    round(c / max(1e-9, sum(per_shard_drain)), 2) for c in per_shard_drain
                ],
            }
        finally:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--cases", default="1x1,1x3,3x3", help="SHARDSxPARTITIONS, comma-separated")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    for case in args.cases.split(","):
        masters, partitions = (int(n) for n in case.split("x"))
        result = asyncio.run(one_case(masters, partitions, args.jobs, args.workers, args.concurrency))
        print(json.dumps({**result, "load": [round(x, 1) for x in os.getloadavg()]}), flush=True)


if __name__ == "__main__":
    main()
