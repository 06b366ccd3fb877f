"""Waiting for jobs to end without polling: one pub/sub subscription per client, one future per job.

`watch.lua` flags a job that someone waits for; the script that ends it publishes its id on the done
channel (a shard channel where the server has them: runtime/channels.py) only when flagged, so jobs nobody
waits for cost nothing. The subscription is confirmed before the flag is set, so no end is missed; after a
reconnect (messages may be lost then) every waiter re-checks, and each also re-checks every `recheck`
seconds as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tqflow.errors import JobNotFound
from tqflow.runtime import channels
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

TERMINAL = ("succeeded", "dead", "skipped", "cancelled")


def after_watch(
    job_id: str, state: Any, recheck: float, deadline: float | None, now: float
) -> tuple[str | None, float]:
    """What `watch.lua`'s reply means for a waiter (deadline None: no timeout): (end state, 0) when the
    job has ended, else (None, seconds to wait before the next check; <= 0 when the time is up).
    LookupError when there is no such job."""
    if state is None:
        raise JobNotFound(f"no job {job_id}")
    if state in TERMINAL:
        return str(state), 0.0
    return None, recheck if deadline is None else min(recheck, deadline - now)


class Waiter:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, recheck: float = 5.0) -> None:
        self.redis, self.keys, self.scripts, self.recheck = redis, keys, scripts, recheck
        self._futures: dict[str, list[asyncio.Future[None]]] = {}
        self._ready: asyncio.Event | None = None
        self._listener: asyncio.Task[None] | None = None

    async def wait(self, job_id: str, timeout: float | None) -> str | None:
        """The job's end state once it is terminal; None on timeout; LookupError when there is no job."""
        await self._subscribed()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            future: asyncio.Future[None] = loop.create_future()
            self._futures.setdefault(job_id, []).append(future)
            try:
                state = await self.scripts.run(calls.watch(self.keys, job_id))
                ended, wait = after_watch(job_id, state, self.recheck, deadline, loop.time())
                if ended is not None or wait <= 0:
                    return ended
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(future, wait)
            finally:
                self._forget(job_id, future)

    def _forget(self, job_id: str, future: asyncio.Future[None]) -> None:
        waiting = self._futures.get(job_id, [])
        if future in waiting:
            waiting.remove(future)
        if not waiting:
            self._futures.pop(job_id, None)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None

    async def _subscribed(self) -> None:
        if self._listener is None or self._listener.done():
            self._ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(self._ready))
        assert self._ready is not None
        await asyncio.wait_for(self._ready.wait(), 10)

    async def _listen(self, ready: asyncio.Event) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await channels.subscribe(self.redis, pubsub, self.keys.done_channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    what = channels.kind(message)
                    if what == "confirmed":
                        ready.set()
                        self._wake_all()  # after a reconnect: whatever ended meanwhile is re-checked
                    elif what == "message":
                        self._wake(str(message["data"]))
                    elif what == "dropped":
                        raise channels.SubscriptionDropped(self.keys.done_channel)
            except (RedisError, OSError):
                # A lost connection, a redirect (MOVED: the slot's node changed) or a dropped subscription.
                ready.clear()
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _wake(self, job_id: str) -> None:
        for future in self._futures.get(job_id, []):
            if not future.done():
                future.set_result(None)

    def _wake_all(self) -> None:
        for job_id in list(self._futures):
            self._wake(job_id)

    def pending(self) -> dict[str, Any]:
        return {k: len(v) for k, v in self._futures.items()}
