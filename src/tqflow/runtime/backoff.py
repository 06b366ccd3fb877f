"""The delay before the next attempt, from a `RetryPlan`. Attempts are numbered from 1."""

from __future__ import annotations

import random

from tqflow.plan import RetryPlan

MAX_DELAY_MS = 30 * 86_400_000  # no policy waits longer than 30 days between two attempts


def attempts_left(policy: RetryPlan, attempt: int) -> bool:
    return policy.kind != "none" and attempt < policy.attempts


def delay_ms(policy: RetryPlan, attempt: int, rng: random.Random | None = None) -> int:
    """Milliseconds to wait after failed attempt number `attempt` (1-based)."""
    rng = rng or random.Random()
    if policy.kind == "fixed":
        base = policy.delay_ms
    elif policy.kind == "schedule":
        base = policy.schedule_ms[min(attempt, len(policy.schedule_ms)) - 1] if policy.schedule_ms else 0
    elif policy.kind == "exponential":
        cap = min(policy.max_delay_ms, MAX_DELAY_MS) if policy.max_delay_ms is not None else MAX_DELAY_MS
        try:
            grown = policy.delay_ms * policy.factor ** (attempt - 1)
        except OverflowError:  # a long run of attempts: the power leaves the float range
            grown = cap
        base = int(min(grown, cap))
    else:
        return 0
    return _jitter(base, policy.jitter, rng)


def _jitter(base: int, jitter: str, rng: random.Random) -> int:
    if jitter == "full":
        return rng.randint(0, base)
    if jitter == "equal":
        return base // 2 + rng.randint(0, base - base // 2)
    if jitter.endswith("%"):
        spread = int(base * float(jitter[:-1]) / 100)
        return max(0, base + rng.randint(-spread, spread))
    return base
