"""What one request sent alone costs Redis, whatever it is: the floor under a one-by-one enqueue's Redis µs.

Usage: .venv/bin/python bench/request_floor.py [--n 20000] [--rounds 3]

A private redis-server (runtime/embedded.py); a sync redis-py client sends `--n` requests one at a time
(PING, an XADD, an EVALSHA of `return 1`), and the server's `INFO cpu` delta a request is printed (user +
sys, and sys alone: on a VM most of it is the kernel's part of the wake, the read and the write), medians
of `--rounds`. Issue 12 asks ≤ 20 µs of Redis a job enqueued one by one, enqueue to done: compare it with
this box's figure here (docs/benchmarks.md, *the sixth session*).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import redis

from tqflow.runtime.embedded import EmbeddedRedis


def cpu_us(r: redis.Redis) -> tuple[float, float]:
    info = r.info("cpu")
    return (info["used_cpu_user"] + info["used_cpu_sys"]) * 1e6, info["used_cpu_sys"] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        r = redis.Redis.from_url(server.url)
        sha = r.script_load("return 1")
        requests: dict[str, Callable[[int], object]] = {
            "PING": lambda i: r.ping(),
            "XADD": lambda i: r.xadd("floor", {"p": i}),
            "EVALSHA `return 1`": lambda i: r.evalsha(sha, 0),
        }
        got: dict[str, list[tuple[float, float, float]]] = {label: [] for label in requests}
        for _ in range(args.rounds):  # interleaved: each round sends every kind once
            for label, send in requests.items():
                total, sys_ = cpu_us(r)
                started = time.perf_counter()
                for i in range(args.n):
                    send(i)
                rate = args.n / (time.perf_counter() - started)
                after, sys_after = cpu_us(r)
                got[label].append(((after - total) / args.n, (sys_after - sys_) / args.n, rate))
        r.close()
    print(f"{args.n:,} requests one at a time, medians of {args.rounds} rounds")
    for label, rows in got.items():
        mid = len(rows) // 2
        total, sys_, rate = (sorted(column)[mid] for column in zip(*rows, strict=True))
        print(f"  {label:<20} Redis {total:5.1f} µs a request (sys {sys_:4.1f}), {rate:,.0f} /s")


if __name__ == "__main__":
    main()
