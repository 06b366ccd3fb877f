from __future__ import annotations

import pytest

from tqflow.runtime.keys import Keys
from tqflow.runtime.scripts import script_text


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
