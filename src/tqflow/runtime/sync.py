"""A synchronous client for code without an event loop (scripts, Django views, …).

    with SyncClient.from_url("redis://localhost:6379") as client:
        job_id = client.enqueue(resize, image="a.png")
        print(client.result(job_id, timeout=30))

Native (plain redis-py sync calls, no event loop, no thread): `enqueue`, `enqueue_many`, `result`, `job`
and `cancel`. They share everything but the I/O with the asyncio `Client` (runtime/jobs.py: `JobBuilder`
checks, encodes and pages jobs, `parse_replies` reads the enqueue script's replies, `outcome` a finished
job's) and call the same Lua scripts by SHA, reloading them on NOSCRIPT (store/scripts.py). One enqueue is
one EVALSHA round trip. Every other `Client` method (start_run, wait, run_info, deploy, reprioritize,
cancel_run, replay, dead_letters, …) runs the asyncio `Client` on a private event loop in a daemon
thread, started on the first such call; each call waits for its result.

A SyncClient may be shared by threads: script calls use the connection the client keeps when it is free,
else one of the pool's (runtime/store/scripts.py `SyncScripts`); every other call takes one of the pool's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from redis import Redis
from redis.client import PubSub

from tqflow.errors import UsageTypeError
from tqflow.runtime import channels, partitions
from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect, connect_sync
from tqflow.runtime.jobs import (
    NO_OPTIONS,
    OPTION_SET,
    BulkItem,
    BulkRejected,
    JobId,
    JobOptions,
    SyncSubmitter,
    cancel_status,
    job_info,
    job_options,
    job_row,
    outcome,
    queue_job_read,
    refusal,
)
from tqflow.runtime.lifecycle import Backfilled
from tqflow.runtime.runs import JobInfo, now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.payloads import PayloadSettings
from tqflow.runtime.store.scripts import SyncScripts
from tqflow.runtime.task import Call, Task
from tqflow.runtime.waiter import after_watch

R = TypeVar("R")
T = TypeVar("T")
P = ParamSpec("P")


def _native(
    signature: Callable[Concatenate[Client, P], Coroutine[Any, Any, T]], impl: Callable[..., Any]
) -> Callable[Concatenate[SyncClient, P], T]:
    """`impl` as a SyncClient method typed with the signature of `Client`'s method: the options are
    defined once, on `Client` (Python cannot yet type "these keywords and any others" from a TypedDict,
    PEP 728, so `impl` takes `**kwargs` and `_pop_options` takes the options out)."""
    return impl


def _on_loop(
    method: Callable[Concatenate[Client, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[SyncClient, P], T]:
    """`Client`'s coroutine `method` as a SyncClient method with the same signature: it runs on the
    private event loop and the calling thread waits for its result."""

    def call(self: SyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(method(self.client, *args, **kwargs))

    call.__name__ = call.__qualname__ = method.__name__
    call.__doc__ = method.__doc__
    return call


def _pop_options(kwargs: dict[str, Any]) -> JobOptions:
    """Take the job options out of a call's keywords (what is left are the task's arguments)."""
    named = OPTION_SET.intersection(kwargs)
    if not named:  # most calls: the task's arguments alone
        return NO_OPTIONS
    options = job_options(kwargs)
    for name in named:
        del kwargs[name]
    return options


class SyncClient:
    def __init__(
        self, url: str, namespace: str = "tqflow", payload_settings: PayloadSettings | None = None
    ) -> None:
        self.url = url
        self.redis: Redis = connect_sync(url, namespace=namespace)
        self.keys = Keys(namespace)
        self.payload_settings = payload_settings or PayloadSettings()
        self.scripts = SyncScripts(self.redis)
        self.submitter = SyncSubmitter(self.redis, self.keys, self.scripts, self.payload_settings)
        self.waiter = SyncWaiter(self.redis, self.keys, self.scripts)
        self._client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._partitioned: bool | None = None  # a namespace of several partitions: read at first use

    @classmethod
    def from_url(
        cls, url: str, namespace: str = "tqflow", payload_settings: PayloadSettings | None = None
    ) -> SyncClient:
        return cls(url, namespace, payload_settings)

    # -- native: standalone jobs (plain redis-py calls) ---------------------------------------------

    def partitioned(self) -> bool:
        """Whether the namespace has several partitions (runtime/partitions.py): then the standalone job
        calls go through the asyncio client, which knows where each job is."""
        if self._partitioned is None:
            self._partitioned = partitions.parse_count(self.redis.get(self.keys.partitions), self.keys) > 1
        return self._partitioned

    def _enqueue(self, task: Task[Any, Any] | str | Call[Any], /, **kwargs: Any) -> JobId[Any]:
        """`Client.enqueue`, synchronously: one EVALSHA."""
        if isinstance(task, str):  # sent by name: its workers' published policies and parameters
            self.submitter.catalog.load_sync(self.redis, (task,))
        given = dict(kwargs)
        job = self.submitter.prepare(task, kwargs, _pop_options(kwargs))
        if self.partitioned():  # checked above the same way; the asyncio client knows the partitions
            return self._run(self.client.enqueue(task, **given))
        try:
            [result] = self.submitter.submit([job], atomic=True)
        except BulkRejected as err:
            raise refusal(err) from None
        return result

    def _enqueue_many(
        self, calls: Sequence[BulkItem], /, *, atomic: bool = True, **kwargs: Any
    ) -> list[JobId[Any]]:
        """`Client.enqueue_many`, synchronously: one script call or one pipeline of them."""
        given = dict(kwargs)
        options = _pop_options(kwargs)
        if kwargs or options.unique is not None:
            unexpected = sorted(kwargs) or ["unique"]
            raise UsageTypeError(f"enqueue_many() got unexpected keyword arguments: {', '.join(unexpected)}")
        if self.partitioned():
            return self._run(self.client.enqueue_many(calls, atomic=atomic, **given))
        self.submitter.catalog.load_sync(self.redis, self.submitter.names(None, calls))
        return self.submitter.submit(self.submitter.prepare_many(calls, options, atomic), atomic)

    enqueue = _native(Client.enqueue, _enqueue)
    enqueue_many = _native(Client.enqueue_many, _enqueue_many)

    @overload
    def result(self, job_id: JobId[R], timeout: float | None = None) -> R: ...

    @overload
    def result(self, job_id: str, timeout: float | None = None) -> Any: ...

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        """`Client.result`, synchronously (a pub/sub subscription for the wait, no polling)."""
        if self.partitioned():
            return self._run(self.client.result(job_id, timeout))
        state = self.waiter.wait(job_id, timeout)
        if state is None:
            raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
        return outcome(job_id, self.job(job_id))

    def job(self, job_id: str) -> JobInfo:
        """`Client.job`, synchronously: the record, or a queued lean job's entry (one round trip)."""
        if self.partitioned():
            return self._run(self.client.job(job_id))
        with self.redis.pipeline(transaction=False) as pipe:
            is_lean = queue_job_read(pipe, self.keys, job_id)
            replies = pipe.execute(raise_on_error=False)
        return job_info(job_id, job_row(job_id, replies, is_lean), self.payload_settings)

    def cancel(self, job_id: str, reason: str = "cancelled by request") -> str:
        """`Client.cancel`, synchronously."""
        if self.partitioned():
            return self._run(self.client.cancel(job_id, reason))
        reply = self.scripts.run(calls.cancel(self.keys, now_ms(), reason, [job_id]))
        return cancel_status(job_id, reply)

    # -- everything else: the asyncio client's methods on a private loop ----------------------------

    deploy = _on_loop(Client.deploy)
    create_partitions = _on_loop(Client.create_partitions)
    partition_count = _on_loop(Client.partition_count)
    purge_dead_letters = _on_loop(Client.purge_dead_letters)
    start_run = _on_loop(Client.start_run)
    wait = _on_loop(Client.wait)
    run_info = _on_loop(Client.run_info)
    flow = _on_loop(Client.flow)
    cancel_run = _on_loop(Client.cancel_run)
    reprioritize = _on_loop(Client.reprioritize)
    dead_letters = _on_loop(Client.dead_letters)
    dead_letter_queues = _on_loop(Client.dead_letter_queues)
    replay = _on_loop(Client.replay)
    replay_all = _on_loop(Client.replay_all)
    list_jobs = _on_loop(Client.list_jobs)
    resume = _on_loop(Client.resume)
    signal = _on_loop(Client.signal)
    emit = _on_loop(Client.emit)
    waiting_signals = _on_loop(Client.waiting_signals)
    pause = _on_loop(Client.pause)
    unpause = _on_loop(Client.unpause)
    undeploy = _on_loop(Client.undeploy)
    schedule = _on_loop(Client.schedule)
    schedules = _on_loop(Client.schedules)
    schedule_info = _on_loop(Client.schedule_info)
    unschedule = _on_loop(Client.unschedule)

    def backfill(
        self, flow: str, from_ms: int, to_ms: int, *, schedule: str | None = None, rate: float = 10.0
    ) -> list[Backfilled]:
        """`Client.backfill`, synchronously: every tick's outcome, once the whole window is done."""
        client = self.client  # started here: `client` itself waits on the loop

        async def collect() -> list[Backfilled]:
            return [i async for i in client.backfill(flow, from_ms, to_ms, schedule=schedule, rate=rate)]

        return self._run(collect())

    @property
    def client(self) -> Client:
        """The asyncio `Client` behind the methods that are not native (started on first use)."""
        with self._lock:
            if self._client is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="tqflow-sync-client", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                self._client = self._run(_make_client(self.url, self.keys.namespace, self.payload_settings))
            return self._client

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._client is not None and self._loop is not None and self._loop.is_running():
            self._run(self._client.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(5)
        self.scripts.close()
        self.redis.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncWaiter:
    """`Waiter` (runtime/waiter.py) for sync code: each wait subscribes to the done channel (confirmed
    before `watch.lua` flags the job, so no end is missed) and re-checks the job every `recheck` seconds
    and after a reconnect (messages may be lost then)."""

    def __init__(self, redis: Redis, keys: Keys, scripts: SyncScripts, recheck: float = 5.0) -> None:
        self.redis, self.keys, self.scripts, self.recheck = redis, keys, scripts, recheck

    def wait(self, job_id: str, timeout: float | None) -> str | None:
        """The job's end state once it is terminal; None on timeout; LookupError when there is no job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pubsub = self._subscribed()
        try:
            while True:
                state = self.scripts.run(calls.watch(self.keys, job_id))
                ended, wait = after_watch(job_id, state, self.recheck, deadline, time.monotonic())
                if ended is not None or wait <= 0:
                    return ended
                try:
                    _woken(pubsub, job_id, wait)
                except channels.SubscriptionDropped:  # subscribe again where the slot is, then re-check
                    pubsub.close()
                    pubsub = self._subscribed()
        finally:
            pubsub.close()

    def _subscribed(self) -> PubSub:
        pubsub: PubSub = self.redis.pubsub()  # type: ignore[no-untyped-call]
        channels.subscribe_sync(self.redis, pubsub, self.keys.done_channel)
        if not _woken(pubsub, None, 10.0):
            pubsub.close()
            raise TimeoutError("the done channel subscription was not confirmed within 10 s")
        return pubsub


def _woken(pubsub: PubSub, job_id: str | None, seconds: float) -> bool:
    """Read the subscription until the job's end is published or a (re)subscription is confirmed (True),
    or `seconds` pass (False)."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=left)
        if message is None:
            continue
        what = channels.kind(message)
        if what == "confirmed" or (what == "message" and message["data"] == job_id):
            return True
        if what == "dropped":  # the slot left the node (failover): the caller re-checks the job
            raise channels.SubscriptionDropped(str(message["channel"]))
    return False


async def _make_client(url: str, namespace: str, settings: PayloadSettings) -> Client:
    return Client(connect(url, namespace=namespace), namespace, settings)
