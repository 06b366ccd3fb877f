"""structlog set-up: readable console lines on a terminal, JSON lines otherwise; always stderr.

Every line logged while a job runs carries job, run, flow, task, attempt and worker: `JobLogHooks`
sets them as context when the attempt starts, inside the asyncio task that handles it, so the worker's
own lines and the task's lines (threads copy the context) get them too. Arguments, results and
parameters are dropped from log lines unless asked for (`TQFLOW_LOG_PAYLOADS=1`).

What a job costs the log when nothing is logged (a worker at `warning` logs no line for a job that went
well): under `configure_logging`'s set-up the context is one context variable holding the attempt's
event, turned into fields only when a line is written (`add_job_context`); under any other structlog
set-up it is bound field by field, as structlog's own `bind_contextvars` does. A line below the level
the current set-up filters at is not built at all.
"""

from __future__ import annotations

import contextvars
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
# The attempt whose handler (or a thread it runs) logs a line now, for `add_job_context`.
_attempt: contextvars.ContextVar[AttemptEvent | None] = contextvars.ContextVar("tqflow_job", default=None)
LEVELS = {name.lower(): number for name, number in logging.getLevelNamesMapping().items()}


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
        add_job_context,
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


def add_job_context(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The running attempt's job, run, flow, task, attempt and worker (a line's own fields win)."""
    attempt = _attempt.get()
    if attempt is not None:
        for key, value in job_context(attempt).items():
            event.setdefault(key, value)
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


class _SetUp:
    """What structlog's current configuration does with a job's lines, looked at again when it changes."""

    def __init__(self) -> None:
        self.seen: tuple[Any, Any] | None = None
        self.lazy = False  # add_job_context is among its processors
        self.threshold = 0  # the lowest level it logs (0: all, an unfiltered wrapper)

    def look(self) -> _SetUp:
        config = _CONFIG
        if config is not None:  # structlog's own settings object: two attribute reads a job
            wrapper, processors = config.default_wrapper_class, config.default_processors
        else:  # a structlog without it: its public copy of them, a dict a call
            public = structlog.get_config()
            wrapper, processors = public["wrapper_class"], public["processors"]
        if self.seen is None or self.seen[0] is not wrapper or self.seen[1] is not processors:
            self.seen = (wrapper, processors)
            self.lazy = add_job_context in processors
            effective = getattr(wrapper, "get_effective_level", None)  # a filtering bound logger's
            self.threshold = int(effective(None)) if callable(effective) else 0
        return self


# What structlog.get_config() copies into a new dict on every call (read twice a job); None if it moved.
_CONFIG = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
if not all(hasattr(_CONFIG, name) for name in ("default_wrapper_class", "default_processors")):
    _CONFIG = None
_set_up = _SetUp()
FINISHED_LEVELS = {"dead": "error", "retry": "warning", "stale": "warning"}


class JobLogHooks:
    """A `WorkerHooks` that logs each attempt's start (debug) and end, with the job's context."""

    def attempt_started(self, event: AttemptEvent) -> None:
        set_up = _set_up.look()
        if set_up.lazy:
            _attempt.set(event)
        else:
            structlog.contextvars.bind_contextvars(**job_context(event))
        if set_up.threshold <= logging.DEBUG:
            log.debug("job started", queue=event.queue, priority=event.priority, waited_ms=event.waited_ms)

    def attempt_finished(self, event: OutcomeEvent) -> None:
        level = FINISHED_LEVELS.get(event.outcome, "info")
        if LEVELS[level] < _set_up.look().threshold:
            return  # the line would be filtered out: not built
        fields: dict[str, Any] = {**job_context(event.attempt), "outcome": event.outcome}
        fields["duration_ms"] = event.duration_ms
        if event.error_type:
            fields["error_type"] = event.error_type
            fields["error"] = event.error_message
        getattr(log, level)("job finished", **fields)
