"""A worker hook that keeps each job's attempt history (a capped list per job) for the API and dashboard.

The job record holds only the last error; this list says when each attempt ran, where, for how long
and how it ended. Hooks are synchronous, so the write is scheduled on the worker's event loop.
"""

from __future__ import annotations

import asyncio
import json

import structlog
from redis.asyncio import Redis

from tqflow.runtime.hooks import OutcomeEvent, no_op
from tqflow.runtime.partitions import Place, RunPlaces, run_places
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store.keys import Keys

log = structlog.get_logger("tqflow.attempts")
KEEP = 50  # attempts kept per job
TTL_S = 30 * 86400


class AttemptRecorder:
    """Buffers finished attempts and writes them in batches: one pipeline per batch from one flusher task,
    so a busy worker neither opens a connection per job nor adds a round trip per job."""

    def __init__(
        self,
        redis: Redis,
        namespace: str = "tqflow",
        *,
        batch: int = 500,
        interval: float = 0.02,
        ttl_s: int = TTL_S,
    ) -> None:
        self.ttl_s = ttl_s  # keep_history (tqrun worker --keep-history)
        self.redis = redis
        self.keys = Keys(namespace)
        self.batch = batch
        self.interval = interval
        self._buffer: list[tuple[str, str]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._places: RunPlaces | None = None  # a `pK:` job's history goes to its partition

    attempt_started = no_op  # recorded once it ends, with its outcome

    def attempt_finished(self, event: OutcomeEvent) -> None:
        if event.outcome == "stale":
            return  # a stale attempt changed nothing; its job's history belongs to the new owner
        if event.outcome == "succeeded" and event.attempt.attempt == 1:
            return  # a first-attempt success: its record holds all its history would (inspect.first_attempt)
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
        self._buffer.append((event.attempt.job_id, json.dumps(entry)))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._buffer:
            await asyncio.sleep(self.interval)  # let a batch gather
            batch, self._buffer = self._buffer[: self.batch], self._buffer[self.batch :]
            await self._write(batch)

    async def _write(self, batch: list[tuple[str, str]]) -> None:
        try:
            if self._places is None:
                self._places = await run_places(self.redis, self.keys)
            grouped: dict[int, tuple[Place, list[tuple[str, str]]]] = {}
            for job_id, entry in batch:  # one pipeline per partition (a cluster serves each elsewhere)
                place, local = self._places.at(job_id)
                grouped.setdefault(id(place), (place, []))[1].append((local, entry))
            for place, entries in grouped.values():
                async with place.redis.pipeline(transaction=False) as pipe:
                    for local, entry in entries:
                        key = place.keys.attempts(local)
                        pipe.rpush(key, entry)
                        pipe.ltrim(key, -KEEP, -1)
                        pipe.expire(key, self.ttl_s)
                    await pipe.execute()
        except Exception as err:  # history is best effort; the jobs themselves are already recorded
            log.warning("could not record attempts", jobs=len(batch), error=repr(err))

    async def flush(self) -> None:
        """Wait until every buffered attempt is written (tests, and a worker shutting down)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        """Write what is buffered, then end the partitions' own connections."""
        await self.flush()
        if self._places is not None:
            await self._places.close()
            self._places = None
