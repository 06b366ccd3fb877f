"""The Lua scripts, each loaded with the shared prelude (lua/common.lua) and called by SHA.

`call` runs one script (loading it once if the server does not know it); `queue` adds a call to a
pipeline (call `ensure_loaded` before, so the pipeline needs no extra round trip to load scripts).
`Scripts` works on a `redis.asyncio` client, `SyncScripts` on a sync one (the sync client, runtime/sync.py).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command
except ImportError:  # redis-py works without hiredis; so does this
    pack_command = None

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
    "resume_run",
)

Arg = Any  # str, int or float: what Redis takes as an argument


@cache
def script_text(name: str) -> str:
    lua = resources.files("tqflow.runtime.store").joinpath("lua")
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
        queue_script(pipe, name, keys, args)


def queue_script(pipe: Any, name: str, keys: Sequence[str], args: Sequence[Arg]) -> None:
    """Add a script call to a pipeline, sync or asyncio (queueing is the same on both)."""
    pipe.evalsha(script_sha(name), len(keys), *keys, *args)


class SyncScripts:
    """`Scripts` for a sync redis-py client: the same scripts, SHAs and NOSCRIPT recovery.

    `call` is a producer's hot path (one enqueue is one call), so it skips redis-py's per-command pool
    checkout: it keeps one connection of the pool for itself and sends on it directly (redis-py's
    `Connection` still does the health checks and disconnects on any error; a connection error is
    retried once on a new connection). A call made while another thread uses that connection goes
    through `execute_command` (a connection of the pool)."""

    def __init__(self, redis: SyncRedis) -> None:
        self.redis = redis
        self._loaded = False
        self._own: Any = None  # the kept connection (redis.connection.Connection)
        self._own_lock = threading.Lock()
        self._pid = os.getpid()

    def call(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        command = ("EVALSHA", script_sha(name), len(keys), *keys, *args)
        try:
            return self._execute(command)
        except NoScriptError:  # a flushed script cache or a restarted Redis
            self.redis.script_load(script_text(name))
            return self._execute(command)

    def _execute(self, command: tuple[Arg, ...]) -> Any:
        if not self._own_lock.acquire(blocking=False):
            return self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
        try:
            if self._own is None or self._pid != os.getpid():  # after a fork: the parent's socket is not ours
                self._own, self._pid = self.redis.connection_pool.get_connection(), os.getpid()
            try:
                return self._send(command)
            except (RedisConnectionError, RedisTimeoutError):
                # A connection Redis closed while it sat idle (a restart, CLIENT KILL, a timeout) fails
                # on its next use; redis-py disconnected it, so this connects again, once.
                return self._send(command)
        finally:
            self._own_lock.release()

    def _send(self, command: tuple[Arg, ...]) -> Any:
        if pack_command is None:
            self._own.send_command(*command)
        else:  # hiredis' packer directly: the same bytes, without redis-py's Python layer around it
            self._own.send_packed_command([pack_command(command)])
        return self._own.read_response()

    def close(self) -> None:
        """Give the kept connection back to the pool."""
        with self._own_lock:
            if self._own is not None and self._pid == os.getpid():
                self.redis.connection_pool.release(self._own)
            self._own = None

    def ensure_loaded(self, force: bool = False) -> None:
        if self._loaded and not force and all(self.redis.script_exists(script_sha(SCRIPT_NAMES[0]))):
            return
        for name in SCRIPT_NAMES:
            self.redis.script_load(script_text(name))
        self._loaded = True
