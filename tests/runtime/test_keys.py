from __future__ import annotations

import pytest

from tqflow.runtime.store import lean
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import script_text


def test_key_layout_is_pinned() -> None:
    keys = Keys("prod")
    assert keys.prefix == "{prod}"
    assert keys.stream("etl", 0) == "{prod}:q:etl:0"
    assert keys.job("r1.load") == "{prod}:job:r1.load"
    assert keys.run("r1") == "{prod}:run:r1"
    assert keys.run_done("r1") == "{prod}:run:r1:done"
    assert keys.delayed == "{prod}:delayed"
    assert keys.dlq == "{prod}:dlq"
    assert keys.flow("nightly") == "{prod}:flow:nightly"
    assert keys.streams("q") == [f"{{prod}}:q:q:{p}" for p in range(5)]


def test_lua_builds_the_same_keys() -> None:
    lua = script_text("finish")
    assert "prefix .. ':job:' .. id" in lua
    assert "prefix .. ':run:' .. id" in lua
    assert "prefix .. ':q:' .. queue .. ':' .. prio" in lua
    assert "prefix .. ':delayed'" in lua


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
    lua = script_text("fetch")
    assert "q .. '.' .. p .. '.' .. eid" in lua
    assert "'^(.+)%.([0-4])%.(%d+%-%d+)$'" in lua
    assert lean.LEAN_ID.pattern == r"^(.+)\.([0-4])\.(\d+-\d+)$"


def test_partitions_have_their_own_hash_tag_and_share_the_control_slot() -> None:
    one, part = Keys("prod"), Keys("prod", 3)
    assert one.partition is None and one.control == one.prefix == "{prod}"
    assert part.prefix == "{prod.3}" and part.control == "{prod}"
    assert part.job("j") == "{prod.3}:job:j" and part.stream("q", 2) == "{prod.3}:q:q:2"
    assert part.flow("f") == "{prod}:flow:f"  # deploys live in the control slot
    assert one.at(3).prefix == part.prefix
    with pytest.raises(ValueError):
        Keys("prod", -1)
