"""streaq: Redis Streams based (coredis); results stored by default."""
import time
from importlib.metadata import version
import anyio
from streaq import Worker
from datetime import timedelta
from common import URL, DONE_KEY, DAG_KEY, LATE_KEY, async_r, alatency_loop, alateness, late_payload, barrier

VERSION = version("streaq")
worker = Worker(redis_url=URL, queue_name="pb", concurrency=100)


@worker.task
async def noop(x: int) -> int:
    await async_r().rpush(DONE_KEY, x)
    return x


@worker.task
async def late(x: int) -> None:
    await async_r().rpush(LATE_KEY, late_payload(x))


@worker.task
async def join() -> int:
    await async_r().rpush(DAG_KEY, 1)
    return 1


def enqueue(n):
    async def go():
        async with worker:
            barrier()
            t0 = time.perf_counter()
            for i in range(n):
                await noop.enqueue(i)
            return time.perf_counter() - t0
    return anyio.run(go)


def enqueue_bulk(n):
    async def go():
        async with worker:
            t0 = time.perf_counter()
            await worker.enqueue_many([noop.enqueue(i) for i in range(n)])
            return time.perf_counter() - t0
    return anyio.run(go)


def latency(n):
    async def go():
        async with worker:
            return await alatency_loop(lambda i: noop.enqueue(i), n)
    return anyio.run(go)


def dag(k):
    async def go():
        import redis.asyncio as aredis
        from common import HOST, PORT, DB
        r = aredis.Redis(host=HOST, port=PORT, db=DB)
        async with worker:
            t0 = time.perf_counter()
            root = await noop.enqueue(0)
            kids = [await noop.enqueue(i).start(after=root.id) for i in range(1, k + 1)]
            await join.enqueue().start(after=[c.id for c in kids])
            got = await r.blpop(DAG_KEY, timeout=120)
            if got is None:
                raise RuntimeError("DAG join not completed")
            return time.perf_counter() - t0
    return anyio.run(go)


def delayed(n):
    async def go():
        async with worker:
            return await alateness(lambda i, d: late.enqueue(i).start(delay=timedelta(seconds=d)), n)
    return anyio.run(go)


def workers(procs):
    return {
        "cmds": [["streaq", "run", "pb_streaq:worker", "--workers", str(procs)]],
        "desc": f"`streaq run --workers {procs}`, concurrency=100 per process",
    }
