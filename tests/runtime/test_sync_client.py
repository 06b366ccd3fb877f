"""The sync client: native enqueue / enqueue_many / result / job / cancel on redis-py's sync client (no
event loop, no thread), against a real Redis; the same ids and job fields as the asyncio client."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.jobs import (
    OPTION_NAMES,
    BulkRejected,
    JobCancelled,
    JobFailed,
    JobNotFound,
    JobRejected,
    Unique,
)
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.store import lean
from tqflow.runtime.sync import SyncClient
from tqflow.runtime.validation import ArgumentError

from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above

VARYING = ("enqueued", "entry", "due", "deadline_at")  # times and stream entry ids


async def stored(redis: Redis, client: Client, job_id: str) -> dict[str, str]:
    """What a job holds in Redis: its record, or a lean job's stream entry (its id names the entry)."""
    where = lean.parse(job_id)
    if where is None:
        return dict(await redis.hgetall(client.keys.job(job_id)))
    queue, level, entry = where
    [(_, fields)] = await redis.xrange(client.keys.stream(queue, level), entry, entry)
    return {"queue": queue, "prio": str(level), **fields}


def loop_threads() -> int:
    return sum(t.name == "tqflow-sync-client" for t in threading.enumerate())


async def test_the_sync_wrapper(redis_url: str, namespace: str, start_worker: WorkerFactory) -> None:
    await start_worker(TASKS)

    def use() -> tuple[int, str, bool]:
        with SyncClient.from_url(redis_url, namespace) as client:
            job_id = client.enqueue(jt.add, x=2, y=3)
            return client.result(job_id, timeout=10), client.job(job_id).state, client._client is None

    assert await asyncio.to_thread(use) == (5, "succeeded", True)  # native: no event loop was started


async def test_enqueue_many_and_results_round_trip(
    redis_url: str, namespace: str, start_worker: WorkerFactory
) -> None:
    await start_worker(TASKS)

    def use() -> dict[str, Any]:
        with SyncClient.from_url(redis_url, namespace) as client:
            typed = client.enqueue(jt.async_add.call(3, y=4))
            by_name = client.enqueue("job_tasks.add", x=10)
            atomic = client.enqueue_many([(jt.add, {"x": i}) for i in range(1500)])  # staged: > 1 page
            paged = client.enqueue_many([jt.add.call(i, y=0) for i in range(1200)], atomic=False)
            failing = client.enqueue(jt.always_fails, message="boom")
            with pytest.raises(JobFailed) as caught:
                client.result(failing, timeout=10)
            return {
                "typed": client.result(typed, timeout=10),
                "by_name": client.result(by_name, timeout=10),
                "atomic": [client.result(j, timeout=10) for j in atomic[::100]],
                "paged": [client.result(j, timeout=10) for j in paged[::100]],
                "statuses": {j.status for j in paged},
                "error": caught.value.error["type"],
                "attempts": client.job(failing).attempt,
            }

    got = await asyncio.to_thread(use)
    assert got == {
        "typed": 7,
        "by_name": 11,
        "atomic": [i + 1 for i in range(0, 1500, 100)],
        "paged": list(range(0, 1200, 100)),
        "statuses": {"ok"},
        "error": "ValueError",
        "attempts": 3,
    }


async def test_options_through_the_sync_path(redis_url: str, namespace: str, redis: Redis) -> None:
    with SyncClient.from_url(redis_url, namespace) as client:
        with pytest.raises(ArgumentError, match="argument `x`"):
            client.enqueue(jt.add, x="not a number")
        first = client.enqueue(jt.record, tag="a", unique=Unique("order-1", "1m"))
        again = client.enqueue(jt.record, tag="b", unique=Unique("order-1", "1m"))
        assert (again, again.status) == (first, "skipped")
        with pytest.raises(JobRejected) as rejected:
            client.enqueue(jt.record, tag="c", unique=Unique("order-1", "1m", "reject"))
        assert rejected.value.holder == first
        replacing = client.enqueue(jt.record, tag="d", unique=Unique("order-1", "1m", "replace"))
        assert replacing != first and client.job(first).state == "cancelled"
        with pytest.raises(BulkRejected) as bulk:
            client.enqueue_many([(jt.record, {"tag": "e"}, {"unique": Unique("order-1", "1m", "reject")})])
        assert bulk.value.results[0].status == "rejected"

        before = int(time.time() * 1000)
        delayed = client.enqueue(jt.add, x=1, delay="30s", priority="high", queue="other")
        info = client.job(delayed)
        assert (info.state, info.priority, info.queue) == ("scheduled", "high", "other")
        assert info.due_ms is not None and before + 30_000 <= info.due_ms <= before + 31_000

        queued = client.enqueue(jt.add, x=1)
        assert client.cancel(queued) == "cancelled"
        with pytest.raises(JobCancelled):
            client.result(queued, timeout=1)
        with pytest.raises(JobNotFound):
            client.cancel("0123456789abcdef")
        with pytest.raises(JobNotFound):
            client.job("0123456789abcdef")
        with pytest.raises(LookupError):
            client.result("0123456789abcdef", timeout=1)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            client.result(client.enqueue(jt.add, x=1), timeout=0.3)  # no worker
        assert time.monotonic() - started < 2
        assert loop_threads() == 0
        # A method that is not native runs on the asyncio client in a thread, started now.
        assert client.reprioritize(client.enqueue(jt.add, x=2), "critical") == "moved"
        assert loop_threads() == 1
        assert [j.id for j in client.list_jobs(queue="other", state="scheduled")] == [delayed]
        assert client.dead_letter_queues() == []
        with pytest.raises(LookupError):
            client.run_info("no-such-run")
    assert loop_threads() == 0


def test_every_client_method_is_an_explicit_sync_method() -> None:
    """No `__getattr__`: every coroutine method of `Client` is a method of SyncClient's own class (so mypy
    and editors see it), and the native ones take the options `Client` defines, no more, no fewer."""
    methods = {n for n, v in vars(Client).items() if inspect.iscoroutinefunction(v) and not n.startswith("_")}
    assert methods <= set(vars(SyncClient)) and "__getattr__" not in vars(SyncClient)
    assert all(not inspect.iscoroutinefunction(vars(SyncClient)[n]) for n in methods)
    keyword_only = inspect.Parameter.KEYWORD_ONLY

    def options(method: Any) -> list[str]:
        return [p.name for p in inspect.signature(method).parameters.values() if p.kind is keyword_only]

    assert options(Client.enqueue) == list(OPTION_NAMES)
    assert options(Client.enqueue_many) == ["atomic", *(n for n in OPTION_NAMES if n != "unique")]
    with SyncClient("redis://127.0.0.1:1", "unused") as client, pytest.raises(TypeError, match="unique"):
        client.enqueue_many([], unique=Unique("k", "1m"))  # type: ignore[call-arg]


async def test_same_ids_and_fields_as_the_async_path(
    redis_url: str, namespace: str, redis: Redis, client: Client
) -> None:
    calls: list[tuple[Any, dict[str, Any], dict[str, Any]]] = [
        (jt.add, {"x": 1, "y": 2}, {}),
        (jt.record, {"tag": "u"}, {"unique": Unique("same-1", "1m"), "priority": "low", "queue": "q2"}),
        (jt.add, {"x": 3}, {"delay": "1m", "deadline": "2m", "timeout": "5s", "dead_letter": "dl"}),
        ("job_tasks.add", {"x": 4}, {}),
    ]
    with SyncClient.from_url(redis_url, namespace) as sync:
        for target, kwargs, options in calls:
            from_sync = sync.enqueue(target, **options, **kwargs)
            if "unique" in options:
                await redis.delete(client.keys.unique(options["unique"].key))
            from_async = await client.enqueue(target, **options, **kwargs)
            assert from_sync != from_async and from_sync.task is from_async.task
            if lean.parse(from_sync) is None:  # a job with a record from the start: a 16-character id
                assert len(from_sync) == len(from_async) == 16 and int(from_sync, 16) != int(from_async, 16)
            else:  # a lean job: its id names its entry, on the same stream either way
                assert lean.parse(from_async) is not None
                assert from_sync.rsplit(".", 1)[0] == from_async.rsplit(".", 1)[0]
            got_sync = await stored(redis, client, from_sync)
            got_async = await stored(redis, client, from_async)
            assert set(got_sync) == set(got_async)
            assert {k: v for k, v in got_sync.items() if k not in VARYING} == {
                k: v for k, v in got_async.items() if k not in VARYING
            }
            if "due" in got_sync:
                assert int(got_sync["deadline_at"]) - int(got_sync["due"]) == 120_000
                assert int(got_async["deadline_at"]) - int(got_async["due"]) == 120_000
        many_sync = sync.enqueue_many([(jt.add, {"x": i}) for i in range(3)], priority="high")
        many_async = await client.enqueue_many([(jt.add, {"x": i}) for i in range(3)], priority="high")
        for a, b in zip(many_sync, many_async, strict=True):
            fields_a = await stored(redis, client, a)
            fields_b = await stored(redis, client, b)
            assert {k: v for k, v in fields_a.items() if k not in VARYING} == {
                k: v for k, v in fields_b.items() if k not in VARYING
            }


def lose_code(r: redis.Redis) -> None:
    """What a restarted Redis without persistence has lost: its script cache and its function libraries."""
    r.script_flush()
    if r.execute_command("FUNCTION", "LIST"):  # type: ignore[no-untyped-call]
        r.execute_command("FUNCTION", "FLUSH")  # type: ignore[no-untyped-call]


def test_noscript_and_a_lost_connection_are_recovered() -> None:
    """Lost scripts and functions (a restarted Redis) are loaded again; a killed connection is replaced. On
    a private server: SCRIPT FLUSH, FUNCTION FLUSH and CLIENT KILL must not touch a shared one."""
    with EmbeddedRedis() as server, SyncClient.from_url(server.url, "noscript") as client:
        first = client.enqueue(jt.add, x=1)
        major = int(str(client.redis.info("server")["redis_version"]).split(".")[0])
        assert client.scripts.functions == (major >= 7)  # Redis 7 (and Valkey) take the function library
        lose_code(client.redis)
        second = client.enqueue(jt.add, x=2)  # the one call: function not found, load, call again
        lose_code(client.redis)
        many = client.enqueue_many([(jt.add, {"x": i}) for i in range(1200)])  # pipelined: checked first
        lose_code(client.redis)
        assert client.cancel(second) == "cancelled"
        client.redis.client_kill_filter(_type="normal", skipme=False)
        third = client.enqueue(jt.add, x=3)  # the kept connection died: the call still goes through
        assert [client.job(j).state for j in (first, second, third, many[-1])] == [
            "queued",
            "cancelled",
            "queued",
            "queued",
        ]
        assert client.redis.xlen(client.keys.stream("default", 2)) == 1202


async def test_threads_share_one_client(redis_url: str, namespace: str, redis: Redis) -> None:
    def use() -> list[str]:
        with SyncClient.from_url(redis_url, namespace) as client, ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda i: str(client.enqueue(jt.add, x=i)), range(400)))

    ids = await asyncio.to_thread(use)
    assert len(set(ids)) == 400
    assert await redis.xlen(f"{{{namespace}}}:q:default:2") == 400


async def test_without_the_hiredis_packer(
    redis_url: str, namespace: str, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tqflow.runtime.store import scripts

    monkeypatch.setattr(scripts, "pack_command", None)  # redis-py's own packer: the same command
    with SyncClient.from_url(redis_url, namespace) as client:
        job_id = client.enqueue(jt.add, x=1)
        assert client.job(job_id).state == "queued"
    assert await redis.xlen(f"{{{namespace}}}:q:default:2") == 1
