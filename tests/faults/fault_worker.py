"""One worker process for the fault tests: the fault tasks, a ledger hook, fast cluster timings.

    python fault_worker.py REDIS_URL NAMESPACE NODE [--grace S] [--lease MS] [--concurrency N]
        [--tasks MODULE[,MODULE…]] [--max-deliveries N] [--queue Q] [--skew-ms N]

The ledger (path in $TQFLOW_LEDGER) gets `begin JOB#ATTEMPT` for every attempt started, `commit JOB#ATTEMPT`
for every finish Redis accepted and `stale JOB#ATTEMPT` for every finish it refused, so commits are counted
outside Redis, per attempt.
"""

from __future__ import annotations

import signal

# A SIGTERM that arrives while the worker still imports must also end it cleanly (exit 0).
TERMINATED: list[int] = []
signal.signal(signal.SIGTERM, lambda signum, frame: TERMINATED.append(signum))

import sys  # noqa: E402
import time  # noqa: E402

# --skew-ms N: this host's clock runs N ms ahead (negative: behind), as libfaketime would make it; set
# before tqflow is imported, so every wall-clock read of the worker (time.time) is skewed.
if "--skew-ms" in sys.argv:
    _SKEW = int(sys.argv[sys.argv.index("--skew-ms") + 1]) / 1000
    _real_time, _real_time_ns = time.time, time.time_ns
    time.time = lambda: _real_time() + _SKEW
    time.time_ns = lambda: _real_time_ns() + int(_SKEW * 1e9)

import argparse  # noqa: E402
import asyncio  # noqa: E402
from pathlib import Path  # noqa: E402

from tqflow.runtime.cluster.settings import ClusterSettings  # noqa: E402
from tqflow.runtime.connection import connect  # noqa: E402
from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent  # noqa: E402
from tqflow.runtime.logging import configure_logging  # noqa: E402
from tqflow.runtime.registry import load_tasks  # noqa: E402
from tqflow.runtime.worker import Worker, WorkerSettings  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "flows"))
from fault_tasks import ledger_line  # noqa: E402


class LedgerHook:
    def attempt_started(self, event: AttemptEvent) -> None:
        ledger_line("begin", f"{event.job_id}#{event.attempt}")

    def attempt_finished(self, event: OutcomeEvent) -> None:
        kind = "stale" if event.outcome == "stale" else "commit"
        ledger_line(kind, f"{event.attempt.job_id}#{event.attempt.attempt}")


async def main(args: argparse.Namespace) -> None:
    redis = connect(args.redis)
    tasks = load_tasks(args.tasks.split(","), [Path(__file__).parent / "flows"])
    cluster = ClusterSettings(
        node=args.node,
        heartbeat_ms=250,
        dead_after_ms=2000,
        leader_lease_ms=1000,
        grace_s=args.grace,
        steal_after_ms=2000,
        tick_grace_ms=args.tick_grace,
        max_deliveries=args.max_deliveries,
    )
    settings = WorkerSettings(
        concurrency=args.concurrency, lease_ms=args.lease, block_ms=200, cluster=cluster
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if TERMINATED:
        stop.set()
    try:
        await Worker(redis, tasks, args.namespace, settings, hooks=[LedgerHook()]).run(stop)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("redis")
    parser.add_argument("namespace")
    parser.add_argument("node")
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--lease", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tick-grace", type=int, default=2000)
    parser.add_argument("--tasks", default="fault_tasks")
    parser.add_argument("--max-deliveries", type=int, default=5)
    parser.add_argument("--skew-ms", type=int, default=0)
    configure_logging("warning")
    asyncio.run(main(parser.parse_args()))
