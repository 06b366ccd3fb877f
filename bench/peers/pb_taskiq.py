"""taskiq + taskiq-redis: RedisStreamBroker (XREADGROUP/XACK) + RedisAsyncResultBackend. No bulk API; DAG needs taskiq-pipelines (not used)."""
import asyncio
import time
from importlib.metadata import version
from taskiq_redis import RedisStreamBroker, RedisAsyncResultBackend
from common import URL, DONE_KEY, async_r, alatency_loop, barrier

VERSION = version("taskiq") + " / taskiq-redis " + version("taskiq-redis")
broker = RedisStreamBroker(url=URL, queue_name="pb").with_result_backend(
    RedisAsyncResultBackend(redis_url=URL, result_ex_time=3600)
)


@broker.task(task_name="noop")
async def noop(x: int) -> int:
    await async_r().rpush(DONE_KEY, x)
    return x


def enqueue(n):
    async def go():
        await broker.startup()
        barrier()
        t0 = time.perf_counter()
        for i in range(n):
            await noop.kiq(i)
        dt = time.perf_counter() - t0
        await broker.shutdown()
        return dt
    return asyncio.run(go())


enqueue_bulk = None
dag = None
delayed = None  # needs a separate `taskiq scheduler` process and schedule source


def latency(n):
    async def go():
        await broker.startup()
        out = await alatency_loop(lambda i: noop.kiq(i), n)
        await broker.shutdown()
        return out
    return asyncio.run(go())


def workers(procs):
    return {
        "cmds": [["taskiq", "worker", "pb_taskiq:broker", "--workers", str(procs), "--max-async-tasks", "100", "--log-level", "WARNING"]],
        "desc": f"`taskiq worker --workers {procs} --max-async-tasks 100` (manager + {procs} worker processes)",
    }
