"""arq: results kept (default keep_result 3600 s). No bulk API, no DAG primitive."""
import asyncio
import time
from importlib.metadata import version
from arq import create_pool
from arq.connections import RedisSettings
from datetime import timedelta
from common import HOST, PORT, DB, DONE_KEY, LATE_KEY, async_r, alatency_loop, alateness, late_payload, barrier

VERSION = version("arq")
REDIS = RedisSettings(host=HOST, port=PORT, database=DB)


async def noop(ctx, x):
    await async_r().rpush(DONE_KEY, x)
    return x


async def late(ctx, x):
    await async_r().rpush(LATE_KEY, late_payload(x))


class WorkerSettings:
    functions = [noop, late]
    redis_settings = REDIS
    max_jobs = 100
    queue_name = "pb"


class WorkerSettingsFastPoll:  # arq reads settings from the class __dict__ only (no inheritance)
    functions = [noop, late]
    redis_settings = REDIS
    max_jobs = 100
    queue_name = "pb"
    poll_delay = 0.005


def enqueue(n):
    async def go():
        pool = await create_pool(REDIS, default_queue_name="pb")
        barrier()
        t0 = time.perf_counter()
        for i in range(n):
            await pool.enqueue_job("noop", i)
        dt = time.perf_counter() - t0
        await pool.aclose()
        return dt
    return asyncio.run(go())


enqueue_bulk = None
dag = None


def latency(n):
    async def go():
        pool = await create_pool(REDIS, default_queue_name="pb")
        out = await alatency_loop(lambda i: pool.enqueue_job("noop", i), n)
        await pool.aclose()
        return out
    return asyncio.run(go())


def delayed(n):
    async def go():
        pool = await create_pool(REDIS, default_queue_name="pb")
        out = await alateness(lambda i, d: pool.enqueue_job("late", i, _defer_by=timedelta(seconds=d)), n)
        await pool.aclose()
        return out
    return asyncio.run(go())


def workers(procs):
    # the tuned variant (poll_delay 5 ms): arq's default 0.5 s poll makes its latency ~500 ms
    return {
        "cmds": [["arq", "pb_arq.WorkerSettingsFastPoll"]] * procs,
        "desc": f"{procs}x `arq` worker processes, max_jobs=100, poll_delay=0.005 s",
    }
