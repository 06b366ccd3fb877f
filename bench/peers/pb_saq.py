"""saq: Redis queue, job results kept (saq default). No bulk enqueue API in this version, no DAG primitive."""
import asyncio
import time
from importlib.metadata import version
from saq import Queue
from common import URL, DONE_KEY, LATE_KEY, async_r, alatency_loop, alateness, late_payload, barrier

VERSION = version("saq")
queue = Queue.from_url(URL, name="pb")


async def noop(ctx, *, x):
    await async_r().rpush(DONE_KEY, x)
    return x


async def late(ctx, *, x):
    await async_r().rpush(LATE_KEY, late_payload(x))


settings = {"queue": queue, "functions": [noop, late], "concurrency": 100}


def enqueue(n):
    async def go():
        q = Queue.from_url(URL, name="pb")
        await q.connect()
        barrier()
        t0 = time.perf_counter()
        for i in range(n):
            await q.enqueue("noop", x=i)
        dt = time.perf_counter() - t0
        await q.disconnect()
        return dt
    return asyncio.run(go())


enqueue_bulk = None
dag = None


def latency(n):
    async def go():
        q = Queue.from_url(URL, name="pb")
        await q.connect()
        out = await alatency_loop(lambda i: q.enqueue("noop", x=i), n)
        await q.disconnect()
        return out
    return asyncio.run(go())


def delayed(n):
    async def go():
        q = Queue.from_url(URL, name="pb")
        await q.connect()
        # saq's worker sweeps scheduled jobs once a second by default (timers["schedule"])
        out = await alateness(lambda i, d: q.enqueue("late", x=i, scheduled=time.time() + d), n)
        await q.disconnect()
        return out
    return asyncio.run(go())


def workers(procs):
    return {
        "cmds": [["saq", "pb_saq.settings", "--workers", str(procs), "--quiet"]],
        "desc": f"`saq --workers {procs}`, concurrency=100 per process",
    }
