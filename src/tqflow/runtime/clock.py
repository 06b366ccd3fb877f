"""The runtime's clock: the time every lease, due time, tick and deadline is written and compared in, and
the waits that run on it. A test can move it (`advance`; `tqflow.testing`'s `clock` fixture), so that
delays, retries, schedules and timeouts fire without waiting.

`now_ms()` is this host's clock, corrected by how far it is from Redis's (`sync_clock`, F18), plus how far
a test moved it. The Lua scripts never read Redis's TIME: they take "now" as an argument from `now_ms()`,
so they see the moved clock too. What Redis times by itself (key TTLs, the leader key's PX, a stream
entry's idle time) keeps real time.

The waits (`sleep`, `wait`, `within`) last the given seconds of this clock: real seconds, cut short when
a test moves the clock past their end. F18's corrections do not shorten or stretch them (a correction is a
jump of the wall clock, not time passing), so they count from the monotonic clock, moved by `advance`.
The clock is one per process, as the F18 correction is: every worker, client and loop of the process
shares it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from redis.asyncio import Redis

from tqflow.errors import ClientError

T = TypeVar("T")


class ClockError(ClientError, ValueError):
    """The clock was asked to move backwards (or by a step that is not a positive duration)."""


# F18: leases and cron ticks are times one process writes and another compares, so every worker reads the
# same clock: its own, corrected by how far it is from Redis's (TIME), measured at each heartbeat. A host
# 30 s ahead used to see every other worker's lease as expired and fire ticks 30 s early.
CLOCK_TOLERANCE_MS = 50  # closer than this to Redis's clock: left alone (hosts in sync, measurement noise)
_skew_ms = 0  # Redis's clock minus this host's, as last measured (0 within the tolerance)
_moved_ms = 0  # how far tests moved the clock (`advance`)
_sleepers: set[asyncio.Future[None]] = set()  # the waits in progress, woken when the clock moves
# A client reads Redis's clock too before it computes a due time (a delay, a deadline), so a host whose clock
# is skewed delays jobs by Redis's clock; a worker's heartbeats keep the reading fresh in its process.
SYNC_EVERY_S = 30.0
_synced_at = float("-inf")  # monotonic time of the last good reading


def clock_stale() -> bool:
    """No good reading of Redis's clock in this process for SYNC_EVERY_S."""
    return time.monotonic() - _synced_at > SYNC_EVERY_S


def now_ms() -> int:
    """Milliseconds since the epoch by Redis's clock (this host's, corrected by `sync_clock`), moved by
    `advance`."""
    return int(time.time() * 1000) + _skew_ms + _moved_ms


def monotonic() -> float:
    """Seconds of a clock that only goes forward (time.monotonic), moved by `advance`."""
    return time.monotonic() + _moved_ms / 1000


def correct_clock(server_ms: float, local_ms: float, rtt_ms: float = 0.0) -> int:
    """Set the correction from one reading of Redis's clock at local time `local_ms`; returns it."""
    global _skew_ms
    skew = server_ms - local_ms
    _skew_ms = round(skew) if abs(skew) > max(CLOCK_TOLERANCE_MS, rtt_ms) else 0
    return _skew_ms


async def sync_clock(redis: Redis) -> int:
    """Read Redis's clock (TIME) and correct this process's; a slow or failed reading changes nothing."""
    before = time.time()
    try:
        seconds, micros = await redis.time()
    except Exception:  # Redis away, or a topology without TIME routing: keep the last correction
        return _skew_ms
    return _reading(before, int(seconds), int(micros))


def sync_clock_sync(redis: Any) -> int:
    """`sync_clock` for redis-py's sync client (runtime/sync.py)."""
    before = time.time()
    try:
        seconds, micros = redis.time()
    except Exception:
        return _skew_ms
    return _reading(before, int(seconds), int(micros))


def _reading(before: float, seconds: int, micros: int) -> int:
    global _synced_at
    after = time.time()
    rtt = (after - before) * 1000
    if rtt > 4 * CLOCK_TOLERANCE_MS:  # the reading is worth less than the tolerance
        return _skew_ms
    _synced_at = time.monotonic()
    return correct_clock(seconds * 1000 + micros / 1000, (before + after) / 2 * 1000, rtt)


# -- moving it (tests) ---------------------------------------------------------------------------


def advance(seconds: float) -> None:
    """Move the clock `seconds` forward and wake every wait whose end that passes. Only tests do this."""
    global _moved_ms
    if seconds < 0:
        raise ClockError(f"the runtime's clock only moves forward: advance({seconds}) is negative")
    _moved_ms += round(seconds * 1000)
    for sleeper in list(_sleepers):
        loop = sleeper.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(_wake, sleeper)


def moved_ms() -> int:
    """How far tests moved the clock, in milliseconds (0: it runs with real time)."""
    return _moved_ms


def reset() -> None:
    """Back to real time (the `clock` fixture's teardown). Waits in progress end no earlier than before."""
    global _moved_ms
    _moved_ms = 0


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)


# -- waiting on it -------------------------------------------------------------------------------


async def sleep(seconds: float) -> None:
    """Like asyncio.sleep, on this clock: ends early when a test moves the clock past its end."""
    until = monotonic() + seconds
    while (left := until - monotonic()) > 0:
        sleeper = asyncio.get_running_loop().create_future()
        _sleepers.add(sleeper)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sleeper, left)
        finally:
            _sleepers.discard(sleeper)


async def wait(events: asyncio.Event | Iterable[asyncio.Event], timeout: float) -> bool:
    """Until one of `events` is set (True) or `timeout` seconds of this clock passed (False)."""
    watched = [events] if isinstance(events, asyncio.Event) else list(events)
    if any(event.is_set() for event in watched):
        return True
    waits = [asyncio.ensure_future(event.wait()) for event in watched]
    timer = asyncio.ensure_future(sleep(timeout))
    try:
        await asyncio.wait((*waits, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (*waits, timer):
            pending.cancel()
    return any(event.is_set() for event in watched)


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """asyncio.wait_for on this clock: the awaitable's result, or TimeoutError once `seconds` of this
    clock passed. As wait_for does, the awaitable is cancelled and awaited before the TimeoutError, and
    cancelling the caller cancels it and waits for it too. None: no limit."""
    if seconds is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(sleep(seconds))
    try:
        await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await _cancel_and_wait(task)
        raise
    finally:
        timer.cancel()
    if not task.done():
        await _cancel_and_wait(task)
        if task.cancelled():
            raise TimeoutError
    return task.result()  # (one that ended otherwise while being cancelled: its result or its error)


async def _cancel_and_wait(task: asyncio.Future[T]) -> None:
    task.cancel()
    await asyncio.wait((task,))  # until it ended, whatever it raised
