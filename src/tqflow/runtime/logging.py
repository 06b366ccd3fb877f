"""structlog set-up: readable console lines on a terminal, JSON lines otherwise; always stderr.

Every line logged while a job runs carries job, run, flow, task, attempt and worker: `JobLogHooks`
binds them as context variables when the attempt starts, inside the asyncio task that handles it, so
the worker's own lines and the task's lines (threads copy the context) get them too. Arguments,
results and parameters are dropped from log lines unless asked for (`TQFLOW_LOG_PAYLOADS=1`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent

PAYLOAD_KEYS = ("args", "kwargs", "result", "params", "payload", "outputs")
PAYLOADS_ENV = "TQFLOW_LOG_PAYLOADS"
log = structlog.get_logger("tqflow.jobs")


def configure_logging(
    level: str | None = None, *, json_output: bool | None = None, log_payloads: bool | None = None
) -> None:
    level_name = (level or os.environ.get("TQFLOW_LOG_LEVEL") or "info").upper()
    numeric = logging.getLevelNamesMapping().get(level_name, logging.INFO)
    as_json = json_output if json_output is not None else not sys.stderr.isatty()
    payloads = log_payloads if log_payloads is not None else os.environ.get(PAYLOADS_ENV, "") in ("1", "true")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if not payloads:
        processors.append(drop_payloads)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write a line (print() makes two): lines of several processes sharing stderr never interleave,
        # even with PYTHONUNBUFFERED set.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def drop_payloads(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Arguments and results may hold personal data or secrets: keep them out unless asked."""
    for key in PAYLOAD_KEYS:
        if key in event:
            event[key] = "<hidden: set TQFLOW_LOG_PAYLOADS=1>"
    return event


def job_context(event: AttemptEvent) -> dict[str, Any]:
    return {
        "job": event.job_id,
        "run": event.run_id or None,
        "flow": event.flow or None,
        "task": event.task,
        "attempt": event.attempt,
        "worker": event.worker,
    }


class JobLogHooks:
    """A `WorkerHooks` that logs each attempt's start (debug) and end, with the job's context."""

    def attempt_started(self, event: AttemptEvent) -> None:
        structlog.contextvars.bind_contextvars(**job_context(event))
        log.debug("job started", queue=event.queue, priority=event.priority, waited_ms=event.waited_ms)

    def attempt_finished(self, event: OutcomeEvent) -> None:
        fields: dict[str, Any] = {**job_context(event.attempt), "outcome": event.outcome}
        fields["duration_ms"] = event.duration_ms
        if event.error_type:
            fields["error_type"] = event.error_type
            fields["error"] = event.error_message
        level = {"dead": "error", "retry": "warning", "stale": "warning"}.get(event.outcome, "info")
        getattr(log, level)("job finished", **fields)
