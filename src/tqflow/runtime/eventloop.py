"""The worker's event loop: uvloop when it is installed (the default), else asyncio's own.

A worker is a loop of small awaits (stream reads, script calls, the task bodies' own Redis calls); uvloop's
libuv loop runs each of those hops for less CPU: the benchmark's 2-process drain went up ~20 % with it
(docs/benchmarks.md). `tqrun worker --loop asyncio` (or TQFLOW_EVENT_LOOP=asyncio) keeps the standard loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tqflow.errors import WorkerError

T = TypeVar("T")
CHOICES = ("auto", "uvloop", "asyncio")


class EventLoopError(WorkerError, ValueError):
    """An event loop that cannot be used here (unknown, or uvloop asked for but not installed)."""


def resolve(choice: str) -> str:
    """The loop `choice` stands for: "uvloop" or "asyncio"."""
    if choice not in CHOICES:
        raise EventLoopError(f"event loop {choice!r} is not one of {', '.join(CHOICES)}")
    available = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not available:
        raise EventLoopError("the uvloop event loop was asked for but is not installed (pip install uvloop)")
    return "uvloop" if choice != "asyncio" and available else "asyncio"


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if resolve(choice) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """`asyncio.run(main)` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
