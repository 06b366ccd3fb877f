"""The Lua scripts, each loaded with the shared prelude (lua/common.lua) and called by SHA.

`run` sends one `ScriptCall` (store/calls.py lays out every script's KEYS and ARGV; it loads the script
once if the server does not know it); `queue` adds a call to a pipeline (call `ensure_loaded` before, so the
pipeline needs no extra round trip to load scripts). `Scripts` works on a `redis.asyncio` client,
`SyncScripts` on a sync one (the sync client, runtime/sync.py).
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
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tqflow.errors import StoreError
from tqflow.plan import LEVELS
from tqflow.runtime.store.calls import Arg, ScriptCall

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
    "cluster_heartbeat",
    "cluster_reclaim",
    "cluster_leases",
    "cluster_handback",
    "cluster_leader",
    "cluster_fire",
    "resume_run",
)

REROUTED = (MovedError, AskError, TryAgainError, ClusterDownError, ReadOnlyError)


def lua_file(name: str) -> str:
    return resources.files("tqflow.runtime.store").joinpath("lua").joinpath(f"{name}.lua").read_text()


@cache
def script_text(name: str, levels: int = LEVELS) -> str:
    """A script as Redis runs it: the prelude for `levels` priority levels (`Priority`'s), then its file."""
    if name == "cluster_fire":
        # Firing a cron tick is the leader's fence followed by the runtime's own submit_run, so a run is
        # created only by the current leader, once per tick, in one atomic script.
        return script_text("cluster_fire_fence", levels) + "\n" + lua_file("submit_run")
    if name == "event_run":  # an event's run, once per key within its window (runtime/events.py)
        return prelude(levels) + "\n" + lua_file("event_fence") + "\n" + lua_file("submit_run")
    return prelude(levels) + "\n" + lua_file(name)


@cache
def prelude(levels: int = LEVELS) -> str:
    """The constants taken from Python (the priority levels), then lua/common.lua with the sections it
    includes (`--#include NAME` lines: lua/NAME.lua)."""
    lines = lua_file("common").split("\n")
    return "\n".join(
        [
            f"local LEVEL = '{level_pattern(levels)}'  -- a priority level in a stream key or a lean id",
            *(
                lua_file(line.removeprefix("--#include ").strip()) if line.startswith("--#include ") else line
                for line in lines
            ),
        ]
    )


def level_pattern(levels: int) -> str:
    """A priority level as stream keys and lean job ids spell it, one digit: `[0-4]` for five levels (a
    Lua pattern and a regular expression alike)."""
    if not 1 <= levels <= 10:
        raise StoreError(
            f"{levels} priority levels in tqflow.plan.Priority: stream keys and lean job ids spell a level"
            " as one digit, so there must be 1 to 10"
        )
    return f"[0-{levels - 1}]"


@cache
def script_sha(name: str) -> str:
    return hashlib.sha1(script_text(name).encode()).hexdigest()


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._loaded = False

    async def run(self, call: ScriptCall) -> Any:
        return await self.call(call.name, call.keys, call.args)

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

    def queue(self, pipe: Pipeline, call: ScriptCall) -> None:
        queue_script(pipe, call)


def queue_script(pipe: Any, call: ScriptCall) -> None:
    """Add a script call to a pipeline, sync or asyncio (queueing is the same on both)."""
    pipe.evalsha(script_sha(call.name), len(call.keys), *call.keys, *call.args)


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

    def run(self, call: ScriptCall) -> Any:
        return self.call(call.name, call.keys, call.args)

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
                try:
                    return self._send(command)
                except REROUTED:
                    self._own.disconnect()
                    return self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
            except REROUTED:
                # A cluster slot or a sentinel master moved (runtime/connection.py): the pool's retried
                # path follows it; the kept connection reconnects to the new place on its next use.
                self._own.disconnect()
                return self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
        finally:
            self._own_lock.release()

    def _send(self, command: tuple[Arg, ...]) -> Any:
        if pack_command is None:
            self._own.send_command(*command)
        else:  # hiredis' packer directly: the same bytes, without redis-py's Python layer around it
            try:
                packed = pack_command(command)
            except UnicodeEncodeError:  # a binary payload body (store/payloads.py): its bytes, as they are
                packed = pack_command(tuple(_carried(arg) for arg in command))
            self._own.send_packed_command([packed])
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


def _carried(arg: Arg) -> Arg | bytes:
    """A str that carries bytes (surrogate escapes) as those bytes, as redis-py's encoder writes it."""
    return arg.encode("utf-8", "surrogateescape") if isinstance(arg, str) else arg
