"""Tasks for the hello flow: plain Python functions marked with @task."""

from __future__ import annotations

import asyncio

from tqflow.runtime import task

_flaky_calls: dict[str, int] = {}


@task
def greet(name: str) -> str:
    return f"Hello, {name}!"


@task
def shout(text: str) -> str:
    return text.upper()


@task
async def count_letters(text: str) -> int:
    await asyncio.sleep(0.01)  # async tasks run on the worker's event loop
    return sum(ch.isalpha() for ch in text)


@task
def flaky_echo(text: str, fail_times: int = 1) -> str:
    """Fails on its first `fail_times` calls in this process, to show retries."""
    seen = _flaky_calls.get(text, 0)
    _flaky_calls[text] = seen + 1
    if seen < fail_times:
        raise ConnectionError(f"simulated outage #{seen + 1}")
    return text


@task
def combine(loud: str, letters: int, echoed: str) -> dict[str, object]:
    return {"message": loud, "letters": letters, "echo": echoed}
