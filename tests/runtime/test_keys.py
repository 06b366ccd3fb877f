"""The key layout: `Keys` builds every key name once (pinned here, exactly), and what the Lua scripts
write is what `Keys` names. The second part runs the scripts on a real Redis and looks at the keys they
made; it reads no Lua source."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.store import lean
from tqflow.runtime.store.keys import Keys

from helpers import FLOWS, WorkerFactory, plan_of

TASKS = load_tasks(["job_tasks", "sample_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


def test_key_layout_is_pinned() -> None:
    keys = Keys("prod")
    assert keys.prefix == "{prod}"
    assert keys.stream("etl", 0) == "{prod}:q:etl:0"
    assert keys.job("r1.load") == "{prod}:job:r1.load"
    assert keys.run("r1") == "{prod}:run:r1"
    assert keys.run_done("r1") == "{prod}:run:r1:done"
    assert keys.run_signals("r1") == "{prod}:run:r1:signals"
    assert keys.awaiting == "{prod}:awaiting"
    assert keys.subflows == "{prod}:subflows"  # lua/common.lua subflows_key
    assert keys.event_listeners("order.paid") == "{prod}:event:order.paid"  # deployments.py
    assert keys.delayed == "{prod}:delayed"
    assert keys.dlq == "{prod}:dlq"
    assert keys.after_waiting == "{prod}:after:waiting"  # standalone jobs waiting for their depends_on
    assert keys.keep_results == "{prod}:keep-results"  # the workers' --keep-results (ms)
    assert keys.flow("nightly") == "{prod}:flow:nightly"
    assert keys.streams("q") == [f"{{prod}}:q:q:{p}" for p in range(5)]
    assert keys.tasks == "{prod}:tasks"  # the task catalog (runtime/catalog.py): the control slot's
    assert Keys("prod", 3).tasks == "{prod}:tasks"


@pytest.mark.parametrize("bad", ["", "a{b}", "x" * 65, "sp ace"])
def test_namespace_is_validated(bad: str) -> None:
    with pytest.raises(ValueError):
        Keys(bad)


def test_lean_job_ids_are_pinned() -> None:
    """A lean job's id names its stream entry: QUEUE.LEVEL.ENTRY_ID (store/lean.py, lua/common.lua)."""
    assert lean.lean_id("etl.v2", 3, "1732751234567-0") == "etl.v2.3.1732751234567-0"
    assert lean.parse("etl.v2.3.1732751234567-0") == ("etl.v2", 3, "1732751234567-0")
    assert lean.parse("0123456789abcdef") is None  # a job with a record from the start
    assert lean.parse("19a6c2f3e01a1b2c3d4e5.load") is None  # a flow job
    assert lean.entry_job("q", 2, "5-0", {"t": "m.f", "p": "J-|{}"}) == "q.2.5-0"
    assert lean.entry_job("q", 2, "5-0", {"j": "0123456789abcdef"}) == "0123456789abcdef"


async def test_the_scripts_write_the_keys_that_keys_names(
    redis: Redis, client: Client, namespace: str, start_worker: WorkerFactory
) -> None:
    keys = client.keys
    queued = await client.enqueue(jt.add, x=1, queue="etl.v2", priority="low")  # lean: an entry only
    where = lean.parse(queued)
    assert where is not None and where[:2] == ("etl.v2", 3)
    assert await redis.xrange(keys.stream("etl.v2", 3), where[2], where[2])  # the id names its entry
    delayed = await client.enqueue(jt.add, x=2, delay="1h", priority="high")  # a record from the start
    assert await redis.hget(keys.job(delayed), "state") == "scheduled"
    assert await redis.zscore(keys.delayed, delayed) is not None
    # The Lua side parses a lean id the way lean.parse does (a queue name with dots): cancel finds it.
    assert await client.cancel(queued) == "cancelled"
    assert await redis.hget(keys.job(queued), "state") == "cancelled"

    await client.deploy(plan_of("diamond.tqflow"))
    await start_worker(TASKS)
    run_id = await client.start_run("diamond", {"n": 3})
    assert (await client.wait(run_id, timeout=30)).state == "succeeded"
    assert await redis.hget(keys.run(run_id), "flow") == "diamond"
    assert await redis.exists(keys.run_done(run_id))
    failing = await client.enqueue(jt.always_fails, message="boom", retry=None)
    with pytest.raises(Exception, match="boom"):
        await client.result(failing, timeout=30)
    assert await redis.zscore(keys.dlq, failing) is not None
    assert await redis.hget(keys.job(failing), "state") == "dead"

    made = {str(k) async for k in redis.scan_iter(match=f"{{{namespace}}}*")}
    named = {keys.stream("etl.v2", 3), keys.job(queued), keys.job(delayed), keys.delayed}
    named |= {keys.run(run_id), keys.run_done(run_id), keys.dlq, keys.job(failing)}
    assert named <= made
    assert all(k.startswith(keys.prefix + ":") for k in made)


def test_partitions_have_their_own_hash_tag_and_share_the_control_slot() -> None:
    one, part = Keys("prod"), Keys("prod", 3)
    assert one.partition is None and one.control == one.prefix == "{prod}"
    assert part.prefix == "{prod.3}" and part.control == "{prod}"
    assert part.job("j") == "{prod.3}:job:j" and part.stream("q", 2) == "{prod.3}:q:q:2"
    assert part.flow("f") == "{prod}:flow:f"  # deploys live in the control slot
    assert one.at(3).prefix == part.prefix
    with pytest.raises(ValueError):
        Keys("prod", -1)
