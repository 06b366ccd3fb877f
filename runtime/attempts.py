"""A worker hook that keeps each job's attempt history (a capped list per job) for the API and dashboard.

The job record holds only the last error; this list says when each attempt ran, where, for how long
and how it ended. Hooks are synchronous, so the write is scheduled on the worker's event loop.
"""

from __future__ import annotations

import asyncio
import json

import structlog
from redis.asyncio import Redis

from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent
from tqflow.runtime.keys import Keys
from tqflow.runtime.runs import now_ms

log = structlog.get_logger("tqflow.attempts")
KEEP = 50  # attempts kept per job
TTL_S = 30 * 86400


class AttemptRecorder:
    def __init__(self, redis: Redis, namespace: str = "tqflow") -> None:
        self.redis = redis
        self.keys = Keys(namespace)
        self._pending: set[asyncio.Task[None]] = set()

    def attempt_started(self, event: AttemptEvent) -> None:
        pass  # recorded once it ends, with its outcome

    def attempt_finished(self, event: OutcomeEvent) -> None:
        if event.outcome == "stale":
            return  # a stale attempt changed nothing; its job's history belongs to the new owner
        entry = {
            "attempt": event.attempt.attempt,
            "worker": event.attempt.worker,
            "started": now_ms() - event.duration_ms,
            "duration_ms": event.duration_ms,
            "waited_ms": event.attempt.waited_ms,
            "outcome": event.outcome,
            "error_type": event.error_type,
            "error_message": event.error_message,
        }
        task = asyncio.get_running_loop().create_task(self._write(event.attempt.job_id, json.dumps(entry)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, job_id: str, entry: str) -> None:
        key = self.keys.attempts(job_id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, entry)
                pipe.ltrim(key, -KEEP, -1)
                pipe.expire(key, TTL_S)
                await pipe.execute()
        except Exception as err:  # history is best effort; the job itself is already recorded
            log.warning("could not record an attempt", job=job_id, error=repr(err))

    async def flush(self) -> None:
        """Wait for writes in flight (tests, and a worker shutting down)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
