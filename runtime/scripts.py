"""The Lua scripts, each loaded with the shared prelude (lua/common.lua) and called by SHA.

`call` runs one script (loading it once if the server does not know it); `queue` adds a call to a
pipeline (call `ensure_loaded` before, so the pipeline needs no extra round trip to load scripts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

SCRIPT_NAMES = (
    "submit_run",
    "start",
    "finish",
    "start_many",
    "finish_many",
    "promote",
    "enqueue",
    "fetch",
    "watch",
    "cancel",
    "reprioritize",
    "replay",
    "fan_out",
    "age",
    "cancel_run",
    "claim_unique",
)

Arg = Any  # str, int or float: what Redis takes as an argument


@cache
def script_text(name: str) -> str:
    lua = resources.files("tqflow.runtime").joinpath("lua")
    return lua.joinpath("common.lua").read_text() + "\n" + lua.joinpath(f"{name}.lua").read_text()


@cache
def script_sha(name: str) -> str:
    return hashlib.sha1(script_text(name).encode()).hexdigest()


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        # Kept for callers that use redis-py's script objects.
        self.submit_run: AsyncScript = redis.register_script(script_text("submit_run"))
        self.start: AsyncScript = redis.register_script(script_text("start"))
        self.finish: AsyncScript = redis.register_script(script_text("finish"))
        self.promote: AsyncScript = redis.register_script(script_text("promote"))
        self._loaded = False

    async def call(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            return await self.redis.evalsha(script_sha(name), len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            await self.redis.script_load(script_text(name))
            return await self.redis.evalsha(script_sha(name), len(keys), *keys, *args)  # type: ignore[misc]

    async def ensure_loaded(self, force: bool = False) -> None:
        # When loaded, one cheap check: a restarted Redis has lost its script cache, and pipelined
        # EVALSHAs would fail with NOSCRIPT (F5).
        if self._loaded and not force and all(await self.redis.script_exists(script_sha(SCRIPT_NAMES[0]))):
            return
        for name in SCRIPT_NAMES:
            await self.redis.script_load(script_text(name))
        self._loaded = True

    def queue(self, pipe: Pipeline, name: str, keys: Sequence[str], args: Sequence[Arg]) -> None:
        pipe.evalsha(script_sha(name), len(keys), *keys, *args)
