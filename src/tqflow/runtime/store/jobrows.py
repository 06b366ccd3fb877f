"""Reads of a job's record by field: the one place besides records.py that names a job hash's fields.

The runtime reads a job's whole record through `JobRecord.parse` (records.py); these are the narrower
reads it makes on hot or batched paths (a state, a run, a cancel flag, a flow job's row), each one HGET or
HMGET a job queued on a pipeline, answered typed. `queue_*` functions only queue the command (on a sync
or asyncio pipeline, the caller executes it); the others are coroutines that run their own pipeline.
tests/test_store_layer.py keeps every other module from reading a job hash itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from tqflow.runtime.store import endrow
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.records import JOB_FIELDS, error_of, fields, run_job_name


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def queue_row(pipe: Any, keys: Keys, job_id: str) -> None:
    """Queue the read of a job's JOB_FIELDS (records.py, in that order)."""
    pipe.hmget(keys.job(job_id), *JOB_FIELDS)


def queue_record(pipe: Any, keys: Keys, job_id: str) -> None:
    """Queue the read of a job's whole hash (for `JobRecord.parse`)."""
    pipe.hgetall(keys.job(job_id))


async def record(redis: Redis, keys: Keys, job_id: str) -> dict[str, str]:
    """A job's whole hash as text (empty when there is no record; a lean success's packed end unpacked);
    a run job's `name`, which its record does not hold (the id, RUN.NAME, says it), as an older record
    held it."""
    row = {str(k): str(v) for k, v in (await redis.hgetall(keys.job(job_id))).items()}
    if endrow.FIELD in row:
        return dict(fields(row))
    if "name" not in row and row.get("run"):
        row["name"] = run_job_name(job_id, row["run"])
    return row


async def _field(redis: Redis, keys: Keys, job_ids: Sequence[str], field: str) -> list[str | None]:
    if not job_ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), field)
        return [_text(v) for v in await pipe.execute()]


async def states(redis: Redis, keys: Keys, job_ids: Sequence[str]) -> list[str | None]:
    """Each job's state (None: no record)."""
    return await _field(redis, keys, job_ids, "state")


async def _unpacked(redis: Redis, keys: Keys, job_ids: Sequence[str], field: str) -> list[str | None]:
    """A field a lean success's packed end (endrow.py) may hold, of each job."""
    if not job_ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), field, endrow.FIELD)
        rows = await pipe.execute()
    return [_text(fields({field: value, endrow.FIELD: ran}).get(field)) for value, ran in rows]


async def tasks(redis: Redis, keys: Keys, job_ids: Sequence[str]) -> list[str | None]:
    """Each job's task name (None: no record)."""
    return await _unpacked(redis, keys, job_ids, "task")


async def results(redis: Redis, keys: Keys, job_ids: Sequence[str]) -> list[str | None]:
    """Each job's stored result payload (None: none)."""
    return await _unpacked(redis, keys, job_ids, "result")


async def cancel_flags(redis: Redis, keys: Keys, job_ids: Sequence[str]) -> list[bool]:
    """Whether each job was asked to stop (the `cancel` flag the cancel script sets)."""
    return [flag == "1" for flag in await _field(redis, keys, job_ids, "cancel")]


async def dead_runs(redis: Redis, keys: Keys, job_ids: Sequence[str]) -> list[str | None]:
    """The run each dead job belongs to (through its fan-out parent for an item); None for a job that is
    not dead or belongs to no run."""
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "state", "run", "parent")
        rows = await pipe.execute()
    runs: list[str | None] = []
    for state, run_id, parent in rows:
        if state == "dead" and not run_id and parent:
            run_id = await redis.hget(keys.job(str(parent)), "run")
        runs.append(str(run_id) if state == "dead" and run_id else None)
    return runs


@dataclass(frozen=True)
class FlowJobRow:
    """What a run's view shows of one of its jobs."""

    state: str | None
    attempt: int
    result: str | None
    error: dict[str, Any] | None
    reason: str | None
    child_run: str  # a sub-flow job's child run ('' for none)


async def flow_job_rows(redis: Redis, keys: Keys, run_id: str, names: Sequence[str]) -> list[FlowJobRow]:
    """The rows of a run's jobs `names` (RUN.NAME), in that order."""
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(keys.job(f"{run_id}.{name}"), "state", "attempt", "result", "error", "reason", "child")
        rows = await pipe.execute()
    return [
        FlowJobRow(
            state=_text(row[0]),
            attempt=int(row[1] or 0),
            result=_text(row[2]),
            error=None if _text(row[0]) == "succeeded" else error_of(row[3]),  # an earlier attempt's
            reason=_text(row[4]),
            child_run=str(row[5] or ""),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class SignalJobRow:
    """A signal job's record, as the list of waiting signals reads it."""

    run: str | None
    name: str | None
    flow: str | None
    due: int | None  # when it times out (ms)
    state: str | None


async def signal_job(redis: Redis, keys: Keys, job_id: str) -> SignalJobRow:
    run, name, flow, due, state = await redis.hmget(keys.job(job_id), "run", "name", "flow", "due", "state")
    name = name or run_job_name(job_id, run) or None  # (a run job's record holds no name: its id's)
    return SignalJobRow(_text(run), _text(name), _text(flow), int(due) if due else None, _text(state))
