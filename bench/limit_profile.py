"""What a limited job's own Redis work costs, command by command: the profile behind docs/benchmarks.md
"Flow control" (issue 16).

Usage: .venv/bin/python bench/limit_profile.py [--jobs 100000] [--reps 3]

On a private redis-server (runtime/embedded.py), a Lua loop does what the start and finish scripts do for
the jobs of one call, batch after batch, and `INFO cpu` (used_cpu_sys + used_cpu_user) divided by the jobs
gives µs a job: the holders' zset (one ZADD and one ZREM for a call's jobs, all with one lease end, as
lim_flush wrote them before the holders became a set), with 10 and 100 jobs a call; the same in a hash and
in a set (the set is the layout used now: SADD and SREM); and the once-a-call reads (ZCARD, LLEN, TIME,
GET, SET PX) each on its own, per call. Prints the best of `--reps` for each.
"""

from __future__ import annotations

import argparse

import redis

from tqflow.runtime.embedded import EmbeddedRedis

IDS = "local ids = {} for i = 1, 100 do ids[i] = 'default.2.17331111' .. (11111 + i) .. '-0' end "
LEASE = "1733111111111"


def batch(body: str, size: int) -> str:
    return IDS + f"for j = 1, ARGV[1] / {size} do {body} end"


CASES = {
    "zset holders, 10 a call": batch(
        f"local a = {{}} for i = 1, 10 do a[#a + 1] = {LEASE} a[#a + 1] = ids[i] end "
        "redis.call('ZADD', '{p}:h10', unpack(a)) redis.call('ZREM', '{p}:h10', unpack(ids, 1, 10))",
        10,
    ),
    "zset holders, 100 a call": batch(
        f"local a = {{}} for i = 1, 100 do a[#a + 1] = {LEASE} a[#a + 1] = ids[i] end "
        "redis.call('ZADD', '{p}:h100', unpack(a)) redis.call('ZREM', '{p}:h100', unpack(ids))",
        100,
    ),
    "hash holders, 100 a call": batch(
        f"local a = {{}} for i = 1, 100 do a[#a + 1] = ids[i] a[#a + 1] = {LEASE} end "
        "redis.call('HSET', '{p}:hh', unpack(a)) redis.call('HDEL', '{p}:hh', unpack(ids))",
        100,
    ),
    "set holders, 100 a call": batch(
        "redis.call('SADD', '{p}:s', unpack(ids)) redis.call('SREM', '{p}:s', unpack(ids))", 100
    ),
    "ZCARD (once a call)": "for i = 1, ARGV[1] do redis.call('ZCARD', '{p}:h100') end",
    "LLEN (once a call)": "for i = 1, ARGV[1] do redis.call('LLEN', '{p}:w') end",
    "TIME (once a call)": "for i = 1, ARGV[1] do redis.call('TIME') end",
    "GET (once a call)": "for i = 1, ARGV[1] do redis.call('GET', '{p}:b') end",
    "SET PX (once a call)": (
        "for i = 1, ARGV[1] do redis.call('SET', '{p}:b', '12.5 1733111111111111', 'PX', 5000) end"
    ),
}


def cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    server = EmbeddedRedis()
    url = server.start()
    try:
        r = redis.Redis.from_url(url)
        for name, script in CASES.items():
            best = float("inf")
            for _ in range(args.reps):
                before = cpu(r)
                for _ in range(4):  # four calls: none long enough to trip busy-script alarms
                    r.eval(script, 0, args.jobs // 4)
                best = min(best, (cpu(r) - before) * 1e6 / args.jobs)
            print(f"{name:<26} {best:6.2f} µs")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
