"""The asyncio client's scripts go out on a connection kept out of the pool (store/scripts.py `Scripts`):
what the pool's path gave (a killed connection replaced, lost code loaded again, calls from many coroutines
at once, a cancelled call that leaves no reply behind for the next) must hold on it, against a real Redis.
CLIENT KILL, CLIENT PAUSE and the flushes run on private servers only: never on a server we may share."""

from __future__ import annotations

import asyncio
import re

import httpx
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.store import lean
from tqflow.runtime.store.scripts import Scripts

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


async def lose_code(r: Redis) -> None:
    """What a restarted Redis without persistence has lost: its script cache and its function libraries."""
    await r.script_flush()
    if await r.execute_command("FUNCTION", "LIST"):  # type: ignore[no-untyped-call]
        await r.execute_command("FUNCTION", "FLUSH")  # type: ignore[no-untyped-call]


async def argument_x(redis: Redis, client: Client, job_id: str) -> int:
    """The `x` a lean job was sent with, read from its stream entry (its id names the entry)."""
    where = lean.parse(job_id)
    assert where is not None, job_id
    queue, level, entry = where
    [(_, fields)] = await redis.xrange(client.keys.stream(queue, level), entry, entry)
    found = re.search(r'"x":\s*(-?\d+)', str(fields))
    assert found is not None, fields
    return int(found.group(1))


async def clients_connected(r: Redis) -> int:
    return len(await r.client_list(_type="normal"))


async def test_lost_code_and_a_killed_connection_are_recovered() -> None:
    with EmbeddedRedis() as server:
        client = Client.from_url(server.url, "kept")
        admin = Redis.from_url(server.url, decode_responses=True)
        try:
            first = await client.enqueue(jt.add, x=1)
            await lose_code(admin)
            second = await client.enqueue(jt.add, x=2)  # function not found: load, call again
            await admin.client_kill_filter(_type="normal", skipme=True)  # the kept connection among them
            third = await client.enqueue(jt.add, x=3)  # the kept connection died: the call still lands
            fourth = await client.enqueue(jt.add, x=4)  # and the next is on the kept one, connected again
            states = [(await client.job(j)).state for j in (first, second, third, fourth)]
            assert states == ["queued"] * 4
            assert await admin.xlen(client.keys.stream("default", 2)) == 4  # each exactly once
        finally:
            await client.close()
            await admin.aclose()


async def test_calls_from_many_coroutines_at_once_each_land_once(
    redis_url: str, namespace: str, redis: Redis
) -> None:
    client = Client(redis, namespace)
    ids = await asyncio.gather(*(client.enqueue(jt.add, x=i) for i in range(300)))
    assert len(set(ids)) == 300
    assert await redis.xlen(client.keys.stream("default", 2)) == 300
    assert [await argument_x(redis, client, j) for j in ids] == list(range(300))  # each its own reply


async def test_scripts_made_per_call_share_one_kept_connection() -> None:
    """Some callers make a `Scripts` per call (the hand-back, a run's places): each must not keep a
    connection of its own, or the pool would run dry."""
    with EmbeddedRedis() as server:
        redis = connect(server.url)
        admin = Redis.from_url(server.url)
        try:
            before = await clients_connected(admin)
            for _ in range(50):
                assert await Scripts(redis)._execute(("PING",)) in (True, b"PONG", "PONG")
            assert await clients_connected(admin) - before <= 1
        finally:
            await redis.aclose()
            await admin.aclose()


async def test_a_cancelled_call_leaves_no_reply_for_the_next() -> None:
    """A call cancelled while its reply is on the way: the reply must not be read as the next call's."""
    with EmbeddedRedis() as server:
        client = Client.from_url(server.url, "cancelled")
        admin = Redis.from_url(server.url)
        try:
            await client.enqueue(jt.add, x=0)  # the kept connection is made and the code loaded
            await admin.execute_command("CLIENT", "PAUSE", "5000", "WRITE")  # type: ignore[no-untyped-call]
            held = asyncio.ensure_future(client.enqueue(jt.add, x=1))
            await asyncio.sleep(0.2)
            assert not held.done()  # its FCALL waits on the pause, its reply not sent yet
            held.cancel()
            await asyncio.gather(held, return_exceptions=True)
            await admin.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
            job = await client.enqueue(jt.add, x=2)
            assert (await client.job(job)).state == "queued"
            assert await argument_x(client.redis, client, job) == 2  # its own reply, its own job
        finally:
            await client.close()
            await admin.aclose()


async def test_every_way_a_user_sends_a_job_lands_and_runs(
    client: Client, api: httpx.AsyncClient, start_worker: WorkerFactory
) -> None:
    """By Task, by name, with a compressed body (bytes carried as surrogate escapes) and through the REST
    API (its Client, in process): each call goes over the kept connection, each job runs with its own
    arguments."""
    await start_worker(TASKS)
    by_task = await client.enqueue(jt.add, x=1, y=1)
    by_name = await client.enqueue(jt.add.name, x=2, y=2)
    squeezed = await client.enqueue(jt.add, x=3, y=3, codec="msgpack", compression="zlib")
    posted = await api.post("/jobs", json={"task": jt.add.name, "kwargs": {"x": 4, "y": 4}})
    assert posted.status_code in (200, 201), posted.text
    over_rest = posted.json()["id"]
    results = [await client.result(j, timeout=30) for j in (by_task, by_name, squeezed, over_rest)]
    assert results == [2, 4, 6, 8]
