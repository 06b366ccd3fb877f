"""The worker's per-job fast paths give what the slow paths gave: a job's log context set lazily, job lines
below the level never built, hook dispatch from cached methods; handlers that post their end and return,
whose ends a stopping worker still writes before it hands anything back."""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import structlog
import structlog.testing

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent
from tqflow.runtime.logging import JobLogHooks, configure_logging, job_context
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.worker import Worker, WorkerSettings
from tqflow.runtime.worker.context import WorkerContext
from tqflow.runtime.worker.finisher import Finisher

from helpers import FLOWS

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above

EVENT = AttemptEvent(
    job_id="p1:default.2.1733140000000-0",
    task="jobs.noop",
    queue="default",
    priority="normal",
    attempt=2,
    worker="w-1",
    run_id="p1:r-9",
    flow="nightly",
)


@pytest.fixture(autouse=True)
def structlog_restored() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.reset_defaults()
    structlog.configure(**saved)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_line_logged_during_an_attempt_carries_its_job_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json_output=True)
    hooks = JobLogHooks()
    log = structlog.get_logger("t")

    def in_the_handler() -> None:
        hooks.attempt_started(EVENT)
        log.warning("the task says", task="its own")  # a line's own field wins

    contextvars.copy_context().run(in_the_handler)
    log.warning("elsewhere")  # the handler's context ended with it
    inside, outside = json_lines(capsys.readouterr().err)
    assert {k: inside[k] for k in job_context(EVENT)} == {**job_context(EVENT), "task": "its own"}
    assert inside["job"] == "p1:default.2.1733140000000-0" and inside["run"] == "p1:r-9"
    assert "job" not in outside and "run" not in outside


def test_under_another_set_up_the_context_is_bound_field_by_field() -> None:
    hooks = JobLogHooks()

    def in_the_handler() -> dict[str, Any]:
        with structlog.testing.capture_logs():  # its processors know nothing of add_job_context
            hooks.attempt_started(EVENT)
            return structlog.contextvars.get_contextvars()

    assert contextvars.copy_context().run(in_the_handler) == job_context(EVENT)


def outcome(result: str) -> OutcomeEvent:
    return OutcomeEvent(EVENT, result, 3, "ValueError" if result != "succeeded" else None, "bad")


def test_job_lines_below_the_level_are_not_logged_and_follow_a_new_set_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hooks = JobLogHooks()
    configure_logging("warning", json_output=True)
    hooks.attempt_started(EVENT)  # a debug line
    hooks.attempt_finished(outcome("succeeded"))  # an info line
    hooks.attempt_finished(outcome("retry"))  # a warning line
    lines = json_lines(capsys.readouterr().err)
    assert [(line["event"], line["outcome"], line["level"]) for line in lines] == [
        ("job finished", "retry", "warning")
    ]
    assert lines[0]["error_type"] == "ValueError" and lines[0]["duration_ms"] == 3
    configure_logging("debug", json_output=True)
    hooks.attempt_started(EVENT)
    hooks.attempt_finished(outcome("succeeded"))
    lines = json_lines(capsys.readouterr().err)
    assert [(line["event"], line["level"]) for line in lines] == [
        ("job started", "debug"),
        ("job finished", "info"),
    ]
    assert lines[1]["job"] == EVENT.job_id and lines[1]["flow"] == "nightly"


class Seen:
    def __init__(self) -> None:
        self.started: list[AttemptEvent] = []

    def attempt_started(self, event: AttemptEvent) -> None:
        self.started.append(event)

    def attempt_finished(self, event: OutcomeEvent) -> None:
        pass


class Broken(Seen):
    def attempt_started(self, event: AttemptEvent) -> None:
        raise RuntimeError("a broken hook")


def test_hooks_added_or_replaced_after_the_first_job_are_called_and_a_broken_one_is_skipped() -> None:
    first, later, replacing = Seen(), Seen(), Seen()
    hooks: list[Any] = [Broken(), first]
    context = WorkerContext(cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, None), hooks)
    with structlog.testing.capture_logs() as logged:
        context.emit("attempt_started", EVENT)
        hooks.append(later)  # as Worker adds its heartbeat after the roles were made
        context.emit("attempt_started", EVENT)
        hooks[1] = replacing
        context.emit("attempt_started", EVENT)
    assert (len(first.started), len(later.started), len(replacing.started)) == (2, 2, 1)
    assert [line["hook"] for line in logged if line["event"] == "worker hook failed"] == ["Broken"] * 3


async def test_a_stopping_worker_writes_the_ends_its_handlers_posted_before_it_hands_anything_back(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = Finisher._send

    async def slow_write(self: Finisher, batch: Any) -> list[Any]:
        await asyncio.sleep(0.4)  # the ends are on their way when the worker is told to stop
        return await written(self, batch)

    monkeypatch.setattr(Finisher, "_send", slow_write)
    client = Client.from_url(redis_url, namespace)
    redis = connect(redis_url)
    seen = Seen()
    worker = Worker(redis, TASKS, namespace, WorkerSettings(block_ms=100, concurrency=10), [seen])
    stop = asyncio.Event()
    try:
        ids = [await client.enqueue(jt.sleeper, seconds=0.01) for _ in range(6)]
        running = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + 20
        while len(seen.started) < 6 or worker.runner.in_flight:  # every body over, its handler returned
            assert time.monotonic() < deadline and not running.done()
            await asyncio.sleep(0.005)
        assert worker.completed < 6  # some ends were still being written
        stop.set()
        await asyncio.wait_for(running, 20)
        assert worker.completed == 6
        # none was handed back (no worker is left to run it again): each succeeded, once
        assert [await client.result(i, timeout=5) for i in ids] == ["woke"] * 6
        assert [(await client.job(i)).attempt for i in ids] == [1] * 6
    finally:
        stop.set()
        await client.close()
        await redis.aclose()
