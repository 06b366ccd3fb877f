"""Re-send a submit whose connection failed. A connection that dies after the request was written leaves
the client unable to tell whether it landed; each submit carries a nonce (`new_nonce`) and its script
answers a nonce it has seen with the first send's reply (enqueue.lua, submit_run.lua), so sending it
again is safe and gives the caller a definite answer. A few tries over about a second: a Redis that stays
away still fails the call loudly (and then it may or may not have landed, as with any store)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")
PAUSES_S = (0.05, 0.2, 0.5)  # before each re-send
RESENT = (RedisConnectionError, RedisTimeoutError)  # LOADING is a ConnectionError too

_nonces = itertools.count(random.SystemRandom().getrandbits(62))


def new_nonce() -> str:
    """Unique per call: a random start per process and a counter, with the pid (a forked child keeps the
    parent's counter, not its pid). A reused nonce would answer another call's reply: it must not repeat."""
    return f"{next(_nonces) & 0xFFFFFFFFFFFFFFFF:016x}{os.getpid():x}"


class Lanes:
    """A client's lanes: one a submit call in flight, each naming a key where its script leaves the call's
    nonce and reply (enqueue.lua). A call takes lanes for its script calls and gives them back when it has
    its answer or gave up, so a client keeps as many keys as it has calls in flight at once, not one a
    call; a re-send uses the lanes of its first send."""

    def __init__(self) -> None:
        self.client = new_nonce()
        self._free: list[int] = []
        self._count = 0
        self._lock = threading.Lock()  # a SyncClient may be shared by threads

    def take(self, count: int) -> list[int]:
        with self._lock:
            taken = [self._free.pop() for _ in range(min(count, len(self._free)))]
            while len(taken) < count:
                taken.append(self._count)
                self._count += 1
        return taken

    def give(self, lanes: list[int]) -> None:
        with self._lock:
            self._free.extend(lanes)

    def name(self, lane: int) -> str:
        return f"{self.client}.{os.getpid():x}.{lane}"  # a forked child's lanes are its own


async def resend(send: Callable[[], Awaitable[T]]) -> T:
    for pause in (*PAUSES_S, None):
        try:
            return await send()
        except RESENT:
            if pause is None:
                raise
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


def resend_sync(send: Callable[[], T]) -> T:
    for pause in (*PAUSES_S, None):
        try:
            return send()
        except RESENT:
            if pause is None:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")
