"""Reads of a run's record (`{ns}:run:ID`, written by submit_run.lua and the finish scripts) by field: the one
place that names a run hash's fields in Python, as jobrows.py is for job records.

`queue_*` functions only queue the command on a pipeline (the caller executes it and hands the reply to
the matching reader); the others are coroutines. tests/test_store_layer.py keeps every other module from
reading a run hash itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from tqflow.runtime.store.keys import Keys

# what a run list shows of each run (inspect.py run_summary), in this order
SUMMARY_FIELDS = (
    "flow",
    "version",
    "state",
    "created",
    "finished",
    "open",
    "failed",
    "parent_job",
    "parent_run",
)
# what retention needs to decide whether a finished run may go
RETENTION_FIELDS = ("state", "finished", "flow", "version")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


async def record(redis: Redis, keys: Keys, run_id: str) -> dict[str, str]:
    """A run's whole hash as text (empty when there is no such run)."""
    return {str(k): str(v) for k, v in (await redis.hgetall(keys.run(run_id))).items()}


async def flow_version(redis: Redis, keys: Keys, run_id: str) -> tuple[str, int] | None:
    """The flow a run belongs to and the version it runs (None: no such run)."""
    flow, version = await redis.hmget(keys.run(run_id), "flow", "version")
    if flow is None or version is None:
        return None
    return str(flow), int(str(version))


async def version(redis: Redis, keys: Keys, run_id: str) -> int:
    """The version a run runs (0 when there is no such run)."""
    return int(await redis.hget(keys.run(run_id), "version") or 0)


async def state(redis: Redis, keys: Keys, run_id: str) -> str | None:
    return _text(await redis.hget(keys.run(run_id), "state"))


async def params_created(redis: Redis, keys: Keys, run_id: str) -> tuple[str | None, int | None]:
    """A run's stored parameters (codec text) and when it was created (ms)."""
    params, created = await redis.hmget(keys.run(run_id), "params", "created")
    return _text(params), int(created) if created else None


def queue_params(pipe: Any, keys: Keys, run_id: str) -> None:
    pipe.hget(keys.run(run_id), "params")


def queue_summary(pipe: Any, keys: Keys, run_id: str) -> None:
    pipe.hmget(keys.run(run_id), *SUMMARY_FIELDS)


def summary(row: Sequence[Any]) -> dict[str, Any] | None:
    """The reply of `queue_summary` by field name (None: no such run)."""
    return None if row[0] is None else dict(zip(SUMMARY_FIELDS, row, strict=True))


def queue_flow_state(pipe: Any, keys: Keys, run_id: str) -> None:
    """Reply: (flow, state)."""
    pipe.hmget(keys.run(run_id), "flow", "state")


def queue_retention(pipe: Any, keys: Keys, run_id: str) -> None:
    """Reply: RETENTION_FIELDS' values, in that order."""
    pipe.hmget(keys.run(run_id), *RETENTION_FIELDS)
