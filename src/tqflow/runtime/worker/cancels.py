"""The cancel listener: one pub/sub subscription (shard channels where the server has them:
runtime/channels.py) for cancellations of running jobs and for the promoter's wake-ups, with a look at the
cancel flags of the jobs running here as the safety net under the channel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError

from tqflow.runtime import channels
from tqflow.runtime.store import jobrows
from tqflow.runtime.worker.context import WorkerContext
from tqflow.runtime.worker.runner import Runner

log = structlog.get_logger("tqflow.worker")


class CancelListener:
    def __init__(self, context: WorkerContext, runner: Runner, wake_promoter: Callable[[], None]) -> None:
        self.context = context
        self.runner = runner
        self.wake_promoter = wake_promoter
        self.subscribed = asyncio.Event()  # set once: cancellations sent from then on reach this worker

    async def run(self, stop: asyncio.Event) -> None:
        """Wake-ups for the promoter (an earlier due time) and cancellations of running jobs."""
        keys = self.context.keys
        while not stop.is_set():
            pubsub = self.context.redis.pubsub()
            try:
                await channels.subscribe(self.context.redis, pubsub, keys.delayed_wake, keys.cancel_channel)
                self.subscribed.set()
                await self._check_cancel_flags()  # a cancellation sent while we were not subscribed
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        await self._check_cancel_flags()
                        continue
                    what = channels.kind(message)
                    if what == "dropped":  # the slot left the node: subscribe again where it is now
                        raise channels.SubscriptionDropped(str(message["channel"]))
                    if what != "message":
                        continue
                    if message["channel"] == keys.cancel_channel:
                        self.runner.cancel(str(message["data"]))
                    else:
                        self.wake_promoter()
            except (RedisError, OSError) as err:  # SubscriptionDropped is an OSError
                log.warning("pub/sub connection lost", error=repr(err))
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _check_cancel_flags(self) -> None:
        """The safety net under the cancel channel: look at the flag of every job running here."""
        ids = list(self.runner.active)
        if not ids:
            return
        flags = await jobrows.cancel_flags(self.context.redis, self.context.keys, ids)
        for job_id, flag in zip(ids, flags, strict=True):
            if flag:
                self.runner.cancel(job_id)
