"""Tasks for F8: plain ones, so every failure comes from the bad input, not the task."""

from __future__ import annotations

from tqflow.runtime import task


@task
def echo(text: str) -> str:
    return text
