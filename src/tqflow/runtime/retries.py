"""What to do after a failed attempt: which retry policy applies to the exception, and when to try again.

`rules` pick a policy by the exception's class or any base class, named `module.Class` (builtins by their
bare name, `ValueError`); `never` stops retrying at once. Attempts count every try, the first included.
"""

from __future__ import annotations

from dataclasses import dataclass

from tqflow.plan import RetryPlan
from tqflow.runtime.backoff import attempts_left, delay_ms


def class_names(err: BaseException) -> list[str]:
    """The qualified names of the exception's class and its bases (a pool process sends them along)."""
    remote = getattr(err, "mro", None)
    if isinstance(remote, list):
        return [_builtin(name) for name in remote]
    return [_name(cls) for cls in type(err).__mro__]


def _name(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _builtin(name: str) -> str:
    return name.removeprefix("builtins.")


def _matches(pattern: str, names: list[str]) -> bool:
    return any(name == pattern or _builtin(pattern) == name for name in names)


RETRY_BUDGET_WITHOUT_POLICY = 3


@dataclass(frozen=True)
class Decision:
    retry: bool
    delay_ms: int = 0
    why: str = ""


def decide(
    policy: RetryPlan, err: BaseException, attempt: int, requested_delay_ms: int | None = None
) -> Decision:
    """Retry after `attempt` (1-based) failed with `err`? `Retry(delay=…)` from the task passes its delay."""
    names = class_names(err)
    if any(_matches(p, names) for p in policy.never):
        return Decision(False, why="never retried")
    chosen = policy
    for rule in policy.rules:
        if any(_matches(p, names) for p in rule.on):
            chosen = rule.policy
            break
    if requested_delay_ms is not None:
        # Retry(delay=…) asks for another attempt; the policy's attempts still bound it (3 without a policy).
        limit = RETRY_BUDGET_WITHOUT_POLICY if chosen.kind == "none" else chosen.attempts
        if attempt < limit:
            return Decision(True, requested_delay_ms)
        return Decision(False, why="no attempts left")
    if not attempts_left(chosen, attempt):
        return Decision(False, why="no attempts left")
    return Decision(True, delay_ms(chosen, attempt))
