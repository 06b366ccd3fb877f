"""Live progress of a run while `tqc run` waits: jobs done, running, failed.

On a terminal one line is redrawn in place; otherwise a line is printed each time the counts change.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from tqflow.runtime.inspect import Inspector
from tqflow.runtime.runs import TERMINAL_JOB_STATES
from tqflow.runtime.views import RunDetail

POLL_S = 0.2


def progress_line(run: RunDetail) -> str:
    counts = run.counts
    done = sum(counts.get(state, 0) for state in TERMINAL_JOB_STATES)
    parts = [
        f"jobs {done}/{len(run.jobs)} done",
        f"{counts.get('running', 0)} running",
        f"{counts.get('dead', 0)} failed",
    ]
    for state in ("retrying", "queued", "skipped"):
        if counts.get(state):
            parts.append(f"{counts[state]} {state}")
    return ", ".join(parts)


async def show_progress(inspector: Inspector, run_id: str, stop: asyncio.Event, out: TextIO) -> None:
    """Show the run's progress until `stop` is set, then once more with the final counts."""
    console = Console(file=out)
    if console.is_terminal:
        with Live(Text(""), console=console, transient=False, auto_refresh=False) as live:
            await _poll(inspector, run_id, stop, lambda line: live.update(Text(line), refresh=True))
        return
    last = [""]

    def emit(line: str) -> None:
        if line != last[0]:
            last[0] = line
            print(line, file=out, flush=True)

    await _poll(inspector, run_id, stop, emit)


async def _poll(inspector: Inspector, run_id: str, stop: asyncio.Event, emit: object) -> None:
    assert callable(emit)
    while True:
        finished = stop.is_set()
        with contextlib.suppress(LookupError, ValueError):
            emit(progress_line(await inspector.run(run_id)))
        if finished:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
