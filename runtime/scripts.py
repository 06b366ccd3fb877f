"""The Lua scripts, loaded once per connection with the shared prelude (lua/common.lua)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

SCRIPT_NAMES = ("submit_run", "start", "finish", "promote")


@cache
def script_text(name: str) -> str:
    lua = resources.files("tqflow.runtime").joinpath("lua")
    return lua.joinpath("common.lua").read_text() + "\n" + lua.joinpath(f"{name}.lua").read_text()


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self.submit_run: AsyncScript = redis.register_script(script_text("submit_run"))
        self.start: AsyncScript = redis.register_script(script_text("start"))
        self.finish: AsyncScript = redis.register_script(script_text("finish"))
        self.promote: AsyncScript = redis.register_script(script_text("promote"))
