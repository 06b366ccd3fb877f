"""The Lua scripts know as many priority levels as `Priority` has: store/scripts.py writes the count into
them when it loads them, so a level added to the enum is one the scripts read (nothing in lua/ names it)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tqflow.errors import StoreError
from tqflow.plan import LEVELS, Priority
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import lean
from tqflow.runtime.store.scripts import level_pattern, script_text

from helpers import FLOWS

load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


async def queued_at(client: Client, redis: Redis, level: int, key: str) -> tuple[str, str]:
    """A job with a record, queued on its queue's stream of `level` (moved there from the batch level as
    a reprioritize would: stream and record); its id and stream."""
    job = await client.enqueue(jt.add, x=1, priority="batch", deadline="1h", queue=key)
    assert await redis.exists(client.keys.job(job)), "a job with a deadline has a record"
    stream = client.keys.stream(key, level)
    if level != Priority.BATCH:
        await redis.rename(client.keys.stream(key, Priority.BATCH), stream)
        await redis.hset(client.keys.job(job), "prio", str(level))
    return job, stream


# LEVELS: the scripts the runtime loads; 7: the same scripts written for an enum of seven levels.
@pytest.mark.parametrize("levels", [LEVELS, 7])
async def test_aging_reads_every_level_the_scripts_were_written_for(
    client: Client, redis: Redis, levels: int
) -> None:
    last, last_stream = await queued_at(client, redis, levels - 1, "last")
    past, past_stream = await queued_at(client, redis, levels, "past")
    # age everything queued up to now to level 0: only the stream of a level the scripts know is read
    moved = await redis.eval(script_text("age", levels), 2, last_stream, past_stream, now_ms() + 1, 0, 0)  # type: ignore[misc]
    assert moved == 1
    assert await redis.hmget(client.keys.job(last), "prio", "aged") == ["0", str(levels - 1)]
    assert await redis.xlen(client.keys.stream("last", 0)) == 1 and await redis.xlen(last_stream) == 0
    assert await redis.hget(client.keys.job(past), "prio") == str(levels)  # not a level: left alone
    assert await redis.xlen(past_stream) == 1


def test_lean_ids_name_the_levels_of_priority() -> None:
    assert lean.parse(f"q.{LEVELS - 1}.1-0") == ("q", LEVELS - 1, "1-0")
    assert lean.parse(f"q.{LEVELS}.1-0") is None  # not a level: not a lean id
    with pytest.raises(StoreError, match="11 priority levels"):
        level_pattern(11)  # one digit a level in keys and ids
