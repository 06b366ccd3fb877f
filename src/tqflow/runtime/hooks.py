"""Hooks a worker calls around each attempt, so metrics, logs and alerts stay out of the worker's code.

Hooks must be cheap and must not raise; the worker logs and ignores a hook's exception.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeVar

from tqflow.errors import UsageTypeError


@dataclass(frozen=True)
class AttemptEvent:
    job_id: str  # as callers see it: `pK:ID` for a job of data partition K (runtime/partitions.py)
    task: str
    queue: str
    priority: str  # critical | high | normal | low | batch
    attempt: int
    worker: str
    run_id: str = ""
    flow: str = ""
    waited_ms: int = 0  # from enqueue (or due time) to start
    local_id: str = ""  # the id in its partition (what that partition's scripts know); "" = job_id


@dataclass(frozen=True)
class OutcomeEvent:
    attempt: AttemptEvent
    outcome: str  # succeeded | retry | dead | skipped | stale
    duration_ms: int
    error_type: str | None = None
    error_message: str | None = None


def no_op(self: Any, event: Any) -> None:
    """A hook method that does nothing (`attempt_started = no_op`): the worker does not call it."""


class WorkerHooks(Protocol):
    def attempt_started(self, event: AttemptEvent) -> None: ...

    def attempt_finished(self, event: OutcomeEvent) -> None: ...


Event = TypeVar("Event", AttemptEvent, OutcomeEvent)
_FIELDS = {kind: frozenset(f.name for f in fields(kind)) for kind in (AttemptEvent, OutcomeEvent)}


def made(kind: type[Event], **values: Any) -> Event:
    """An event with every field given, made as the dataclass makes it but in one step: its frozen
    `__init__` sets each field through `object.__setattr__`, and the worker makes two events a job.
    The object is the same (equality, hash, repr); a missing or unknown field is refused."""
    if values.keys() != _FIELDS[kind]:
        raise UsageTypeError(f"{kind.__name__} takes exactly {sorted(_FIELDS[kind])}")
    event = object.__new__(kind)
    event.__dict__.update(values)
    return event


_new, _set = object.__new__, object.__setattr__


def attempt_event(
    job_id: str,
    task: str,
    queue: str,
    priority: str,
    attempt: int,
    worker: str,
    run_id: str,
    flow: str,
    waited_ms: int,
    local_id: str,
) -> AttemptEvent:
    """`made(AttemptEvent, ...)` for the worker's hot path: every field, by position, and no check of
    their names (a positional call and one dict; keyword arguments and the check were ~5k instructions
    of the ~12k an event cost). The same object as the dataclass's (equality, hash, repr)."""
    event = _new(AttemptEvent)
    _set(
        event,
        "__dict__",
        {
            "job_id": job_id,
            "task": task,
            "queue": queue,
            "priority": priority,
            "attempt": attempt,
            "worker": worker,
            "run_id": run_id,
            "flow": flow,
            "waited_ms": waited_ms,
            "local_id": local_id,
        },
    )
    return event


def outcome_event(
    attempt: AttemptEvent,
    outcome: str,
    duration_ms: int,
    error_type: str | None,
    error_message: str | None,
) -> OutcomeEvent:
    """`made(OutcomeEvent, ...)` for the worker's hot path, as `attempt_event`."""
    event = _new(OutcomeEvent)
    _set(
        event,
        "__dict__",
        {
            "attempt": attempt,
            "outcome": outcome,
            "duration_ms": duration_ms,
            "error_type": error_type,
            "error_message": error_message,
        },
    )
    return event
