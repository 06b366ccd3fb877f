"""Retry policies and durations for the Python API: `fixed("30s", attempts=3)`, `exponential(…)`,
`schedule([…])`, `NO_RETRY`, and `Retry(delay=…)` that a task raises to ask for another attempt.

They build the same `RetryPlan` the compiler emits, so flows and the Python API share one semantics:
`attempts` counts every try, the first included. The plan model checks the values (plan/model.py);
what it rejects raises a pydantic ValidationError, a ValueError."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tqflow.errors import WorkerError
from tqflow.plan import RetryPlan, RetryRule
from tqflow.plan.durations import Duration, to_ms


def fixed(delay: Duration, attempts: int = 3) -> RetryPlan:
    return RetryPlan(kind="fixed", attempts=attempts, delay_ms=to_ms(delay, "retry delay"))


def exponential(
    base: Duration,
    *,
    factor: float = 2.0,
    max: Duration | None = None,
    jitter: str = "none",
    attempts: int = 3,
) -> RetryPlan:
    return RetryPlan(
        kind="exponential",
        attempts=attempts,
        delay_ms=to_ms(base, "retry base"),
        factor=factor,
        max_delay_ms=None if max is None else to_ms(max, "retry max"),
        jitter=jitter,
    )


def schedule(delays: Sequence[Duration], attempts: int | None = None) -> RetryPlan:
    ms = [to_ms(d, "retry delay") for d in delays]
    return RetryPlan(kind="schedule", attempts=attempts or len(ms) + 1, schedule_ms=ms)


NO_RETRY = RetryPlan()


def per_exception(
    default: RetryPlan = NO_RETRY,
    *,
    on: Mapping[str | type[BaseException], RetryPlan] | None = None,
    never: Iterable[str | type[BaseException]] = (),
) -> RetryPlan:
    """The block form: a policy per exception class (or a base class), and classes never retried."""
    rules = [RetryRule(on=[qualified(exc)], policy=policy) for exc, policy in (on or {}).items()]
    data = default.model_dump()
    data.update(rules=rules, never=[qualified(e) for e in never])
    return RetryPlan.model_validate(data)


def qualified(exc: str | type[BaseException]) -> str:
    if isinstance(exc, str):
        return exc
    module = exc.__module__
    return exc.__qualname__ if module == "builtins" else f"{module}.{exc.__qualname__}"


class Retry(WorkerError):
    """Raise from a task to ask for another attempt after `delay` (counts as an attempt)."""

    def __init__(self, delay: Duration = 0, message: str = "retry requested") -> None:
        super().__init__(message)
        self.delay_ms = to_ms(delay, "retry delay")
