"""The Lua scripts, as one Redis function library (FUNCTION LOAD, called by FCALL) or, where the server has no
functions (Redis 6.2, an ACL that refuses FUNCTION), each loaded with the shared prelude and called by SHA.

Why functions: a script's prelude (lua/common.lua, ≈ 60 local functions made as closures) runs on every
EVALSHA, ≈ 16 µs of Redis CPU a call on this box; a library runs it once, at load, and each function only
binds its keys (common.lua `bind`). The library's name carries a hash of its code, so workers of two
versions each call their own; it survives a restart with persistence and is replicated, and a server that
lost it ("Function not found": a restart without persistence, FUNCTION FLUSH) gets it again, as a script
cache does on NOSCRIPT. `TQFLOW_SCRIPTS=eval` keeps EVALSHA (before/after measurements, a server whose
functions are off limits).

`run` sends one `ScriptCall` (store/calls.py lays out every script's KEYS and ARGV; it loads the code once if
the server does not have it); `queue` adds a call to a pipeline (call `ensure_loaded` before, so the pipeline
needs no extra round trip to load code). `Scripts` works on a `redis.asyncio` client, `SyncScripts` on a sync
one (the sync client, runtime/sync.py).
"""

from __future__ import annotations

import asyncio
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
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tqflow.errors import StoreError
from tqflow.plan import LEVELS
from tqflow.runtime.store.calls import Arg, ScriptCall, read_reply

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
    "cluster_fire_handoff",
    "resume_run",
)

REROUTED = (MovedError, AskError, TryAgainError, ClusterDownError, ReadOnlyError)


def lua_file(name: str) -> str:
    return resources.files("tqflow.runtime.store").joinpath("lua").joinpath(f"{name}.lua").read_text()


@cache
def script_body(name: str) -> str:
    """A script's own code, without the prelude."""
    if name == "cluster_fire":
        # Firing a cron tick is the leader's fence followed by the runtime's own submit_run, so a run is
        # created only by the current leader, once per tick, in one atomic script.
        return lua_file("cluster_fire_fence") + "\n" + lua_file("submit_run")
    if name == "cluster_fire_handoff":
        # In a namespace of several partitions a tick's run is made in a data partition: the fence and the
        # first step of the hand-off, the run's submission put in the control slot's outbox under the
        # run's id, in one script; the scheduler then submits it in its partition (cluster/outbox.py).
        return lua_file("cluster_fire_fence") + "\n" + OUTBOX_PUT
    if name == "event_run":  # an event's run, once per key within its window (runtime/events.py)
        return lua_file("event_fence") + "\n" + lua_file("submit_run")
    return lua_file(name)


@cache
def script_text(name: str, levels: int = LEVELS) -> str:
    """A script as Redis runs it: the prelude for `levels` priority levels (`Priority`'s), then its body."""
    return prelude(levels) + "\n" + script_body(name)


@cache
def prelude(levels: int = LEVELS, library: bool = False) -> str:
    """The constants taken from Python (the priority levels, whether the code is the function library's
    or an EVALSHA script's), then lua/common.lua with the sections it includes (`--#include NAME` lines:
    lua/NAME.lua)."""
    lines = lua_file("common").split("\n")
    return "\n".join(
        [
            f"local LEVEL = '{level_pattern(levels)}'  -- a priority level in a stream key or a lean id",
            f"local IN_LIBRARY = {'true' if library else 'false'}  -- loaded by FUNCTION LOAD (library_text)",
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


# KEYS[1] the outbox hash; ARGV[1] the run's id (pK:LOCAL), ARGV[2] its submission (JSON).
OUTBOX_PUT = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\nreturn 'handed'\n"

# The lua/ files that are not scripts of their own: the prelude's sections and the fences of composites.
PARTS = ("common", "flow_keys", "fair", "limits", "cluster_fire_fence", "event_fence")


def _library_scripts() -> tuple[str, ...]:
    files = (f.name for f in resources.files("tqflow.runtime.store").joinpath("lua").iterdir())
    own = sorted(name.removesuffix(".lua") for name in files if name.endswith(".lua"))
    return (*(n for n in own if n not in PARTS), "cluster_fire", "cluster_fire_handoff", "event_run")


# Every script the library holds: each lua/ file that is a script, and the composites (script_body).
LIBRARY_SCRIPTS = _library_scripts()

# A function that declares no flag is refused whole when Redis is full (maxmemory): what refuse_when_full()
# does for a script. Those that must run when full (run_when_full(): heartbeats, ends of attempts) say
# `allow-oom`, and so do the ones that only delete (retention, purge), which an EVALSHA ran when full too.
ALLOW_OOM = ("prune_runs", "purge_dlq")


def allows_oom(name: str) -> bool:
    return name in ALLOW_OOM or "run_when_full()" in script_body(name)


@cache
def library_version() -> str:
    code = prelude(LEVELS, True) + "".join(f"{n}:{allows_oom(n)}:{script_body(n)}" for n in LIBRARY_SCRIPTS)
    return hashlib.sha1(code.encode()).hexdigest()[:12]


def library_name() -> str:
    return f"tqflow_{library_version()}"


@cache
def function_name(name: str) -> str:
    return f"{library_name()}_{name}"


@cache
def library_text() -> str:
    """The function library: the prelude once (at load), then one function a script whose body runs with
    KEYS and ARGV bound as an EVALSHA script's are (library locals: a function cannot set globals)."""
    parts = [f"#!lua name={library_name()}", "local KEYS, ARGV", prelude(LEVELS, True)]
    parts.append(
        "local function bound(body)\n"
        "  return function(keys, args)\n"
        "    if not bind(keys) then return redis.error_reply(BAD_KEYS) end\n"
        "    KEYS, ARGV = keys, args\n"
        "    return body()\n"
        "  end\n"
        "end"
    )
    for name in LIBRARY_SCRIPTS:
        flags = "'allow-oom'" if allows_oom(name) else ""
        parts.append(
            f"redis.register_function{{function_name = '{function_name(name)}', flags = {{{flags}}},\n"
            f"  callback = bound(function()\n{script_body(name)}\nend)}}"
        )
    return "\n".join(parts) + "\n"


def functions_wanted() -> bool:
    return os.environ.get("TQFLOW_SCRIPTS", "") != "eval"


def missing_function(error: ResponseError) -> bool:
    return "function not found" in str(error).lower()


def already_loaded(error: ResponseError) -> bool:
    return "already exists" in str(error).lower()


def command_of(functions: bool, call: ScriptCall) -> tuple[Arg, ...]:
    if functions:
        return ("FCALL", function_name(call.name), len(call.keys), *call.keys, *call.args)
    return ("EVALSHA", script_sha(call.name), len(call.keys), *call.keys, *call.args)


class _Kept:
    """The connection a pool's `Scripts` keep for their calls (one a pool, whatever number of `Scripts` are
    made on it: some are made per call), and whether a call is on it now."""

    __slots__ = ("busy", "connection")

    def __init__(self) -> None:
        self.connection: Any = None
        self.busy = False


def _kept_of(redis: Redis) -> _Kept | None:
    pool = getattr(redis, "connection_pool", None)
    if pool is None or not hasattr(pool, "get_connection"):
        return None  # a client without a pool of its own (a cluster client): every call through it
    kept = getattr(pool, "_tqflow_kept", None)
    if kept is None:
        kept = _Kept()
        pool._tqflow_kept = kept
    return kept


class Scripts:
    """Calls the scripts on a `redis.asyncio` client.

    A call is a hot path (one enqueue is one call; so is a worker's fetch and its batched finish), so it is
    sent on a connection kept out of the pool (`_Kept`), without redis-py's per-command checkout, retry
    wrapper and timing hooks (a one-by-one `Client.enqueue` 544k -> 374k instructions, and 308k with
    `_send`: bench/sync_enqueue.py --instructions --asyncio; `SyncClient.enqueue` is 157k). A
    call made while another coroutine's call is on that connection goes through `execute_command` (a
    connection of the pool), and so does a call whose send or read on it failed (a connection Redis closed,
    a timeout, a cluster slot that moved): redis-py disconnects the kept connection on any error but a
    command's own (and on a cancelled read, whose reply would be left on it), so it connects again on its
    next use, and the pool's path retries the call with its backoff and follows the topology
    (runtime/connection.py). Each call's nonce makes the re-send safe, as it does for redis-py's retry."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._loaded = False
        # None until the first call or load: then whether this server takes the function library
        self.functions: bool | None = None if functions_wanted() else False
        self._kept = _kept_of(redis)

    async def run(self, call: ScriptCall) -> Any:
        return read_reply(call, await self.call(call.name, call.keys, call.args))

    async def call(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        if self.functions is None:
            await self._probe()
        if self.functions:
            try:
                return await self._execute(("FCALL", function_name(name), len(keys), *keys, *args))
            except ResponseError as error:
                if not missing_function(error):
                    raise
                await self._load_library()  # a server that lost its functions (restart, FUNCTION FLUSH)
                if self.functions:
                    return await self._execute(("FCALL", function_name(name), len(keys), *keys, *args))
        command = ("EVALSHA", script_sha(name), len(keys), *keys, *args)
        try:
            return await self._execute(command)
        except NoScriptError:  # a flushed script cache or a restarted Redis
            await self.redis.script_load(script_text(name))
            return await self._execute(command)

    async def _execute(self, command: tuple[Arg, ...]) -> Any:
        kept = self._kept
        if kept is None or kept.busy:
            return await self._command(*command)
        kept.busy = True  # no await between the test and this: one coroutine at a time on the connection
        try:
            try:
                if kept.connection is None:
                    kept.connection = await self.redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
                connection = kept.connection
                await _send(connection, connection.pack_command(*command))
                return await connection.read_response()
            except (RedisConnectionError, RedisTimeoutError, *REROUTED):
                if kept.connection is not None:
                    await kept.connection.disconnect()
                return await self._command(*command)
        finally:
            kept.busy = False

    async def _probe(self) -> None:
        """This client's first look: whether the server holds this version's library (a FUNCTION LIST of its
        name), loading it only when it does not. A FUNCTION LOAD sends the whole library (≈ 170 KB), which
        every new process (a `tqc run`, a short-lived producer) and every `Scripts` made per call (the
        hand-back, a run's places) sent before its first call, and twice before its first pipeline, though
        the server refuses it at once when the library is there. A server without functions, or an ACL
        that refuses them, keeps EVALSHA."""
        try:
            present = await self._library_present()
        except ResponseError:
            self.functions = False
            return
        if not present:
            await self._load_library()
            self._loaded = bool(self.functions)
            return
        self.functions = self._loaded = True

    async def _load_library(self) -> None:
        """Load the library (it may be there already); a server without functions keeps EVALSHA."""
        try:
            await self._command("FUNCTION", "LOAD", library_text())
        except ResponseError as error:
            if not already_loaded(error):
                self.functions = False
                return
        self.functions = True

    async def ensure_loaded(self, force: bool = False) -> None:
        # When loaded, one cheap check: a restarted Redis may have lost its functions or its script cache,
        # and pipelined calls would fail (F5).
        if self.functions is None:
            await self._probe()  # found or loaded the library just now: nothing more to check
            if self.functions and not force:
                return
        if self.functions:
            if self._loaded and not force and await self._library_present():
                return
            await self._load_library()
            if self.functions:
                self._loaded = True
                return
        if self._loaded and not force and all(await self.redis.script_exists(script_sha(SCRIPT_NAMES[0]))):
            return
        for name in SCRIPT_NAMES:
            await self.redis.script_load(script_text(name))
        self._loaded = True

    async def _library_present(self) -> bool:
        return bool(await self._command("FUNCTION", "LIST", "LIBRARYNAME", library_name()))

    async def _command(self, *args: Arg) -> Any:
        return await self.redis.execute_command(*args)  # type: ignore[no-untyped-call]

    def queue(self, pipe: Pipeline, call: ScriptCall) -> None:
        pipe.execute_command(*command_of(bool(self.functions), call))


DRAIN_ABOVE = 1 << 16  # bytes left in the transport's buffer after a write: wait for the socket to take them


async def _send(connection: Any, packed: list[bytes]) -> None:
    """`send_packed_command` without its per-call `asyncio.wait_for` (a task and two turns of the event loop
    a call on Python 3.11: ≈ 70k of a one-by-one enqueue's 374k instructions, bench/sync_enqueue.py
    --instructions --asyncio). A write only fills the transport's buffer; the reply's read keeps its
    socket timeout, and a call large enough to stay in the buffer waits for it under the same timeout.
    A connection that is not connected, is closing or is due its health check (and a redis-py without the
    attributes this reads) goes through `send_packed_command` itself."""
    writer = getattr(connection, "_writer", None)
    interval = getattr(connection, "health_check_interval", None)
    due = getattr(connection, "next_health_check", None)
    if (
        writer is None
        or writer.transport.is_closing()
        or due is None
        or (interval and asyncio.get_running_loop().time() > due)
    ):
        await connection.send_packed_command(packed)
        return
    try:
        writer.writelines(packed)
        if writer.transport.get_write_buffer_size() > DRAIN_ABOVE:
            await asyncio.wait_for(writer.drain(), connection.socket_timeout)
    except BaseException as err:  # as send_packed_command does: a half-sent command leaves it unusable
        await connection.disconnect(nowait=True)
        if isinstance(err, asyncio.TimeoutError):
            raise RedisTimeoutError("Timeout writing to socket") from None
        if isinstance(err, OSError | RuntimeError):
            raise RedisConnectionError(f"Error while writing to socket: {err!r}") from err
        raise


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
        self.functions: bool | None = None if functions_wanted() else False  # as Scripts.functions

    def run(self, call: ScriptCall) -> Any:
        return read_reply(call, self.call(call.name, call.keys, call.args))

    def call(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        if self.functions is None:
            self._probe()
        if self.functions:
            try:
                return self._execute(("FCALL", function_name(name), len(keys), *keys, *args))
            except ResponseError as error:
                if not missing_function(error):
                    raise
                self._load_library()  # a server that lost its functions (restart, FUNCTION FLUSH)
                if self.functions:
                    return self._execute(("FCALL", function_name(name), len(keys), *keys, *args))
        command = ("EVALSHA", script_sha(name), len(keys), *keys, *args)
        try:
            return self._execute(command)
        except NoScriptError:  # a flushed script cache or a restarted Redis
            self.redis.script_load(script_text(name))
            return self._execute(command)

    def _probe(self) -> None:
        """`Scripts._probe`: load the library only when the server does not hold it."""
        try:
            present = self._library_present()
        except ResponseError:
            self.functions = False
            return
        if not present:
            self._load_library()
            self._loaded = bool(self.functions)
            return
        self.functions = self._loaded = True

    def _library_present(self) -> bool:
        command = ("FUNCTION", "LIST", "LIBRARYNAME", library_name())
        return bool(self.redis.execute_command(*command))  # type: ignore[no-untyped-call]

    def _load_library(self) -> None:
        try:
            self.redis.execute_command("FUNCTION", "LOAD", library_text())  # type: ignore[no-untyped-call]
        except ResponseError as error:
            if not already_loaded(error):
                self.functions = False
                return
        self.functions = True

    def queue(self, pipe: Any, call: ScriptCall) -> None:
        pipe.execute_command(*command_of(bool(self.functions), call))

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
        if self.functions is None:
            self._probe()  # found or loaded the library just now: nothing more to check
            if self.functions and not force:
                return
        if self.functions:
            if self._loaded and not force and self._library_present():
                return
            self._load_library()
            if self.functions:
                self._loaded = True
                return
        if self._loaded and not force and all(self.redis.script_exists(script_sha(SCRIPT_NAMES[0]))):
            return
        for name in SCRIPT_NAMES:
            self.redis.script_load(script_text(name))
        self._loaded = True


def _carried(arg: Arg) -> Arg | bytes:
    """A str that carries bytes (surrogate escapes) as those bytes, as redis-py's encoder writes it."""
    return arg.encode("utf-8", "surrogateescape") if isinstance(arg, str) else arg
