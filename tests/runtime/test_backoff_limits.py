from __future__ import annotations

import random

from tqflow.plan import RetryPlan
from tqflow.runtime.backoff import MAX_DELAY_MS, delay_ms


def test_exponential_backoff_survives_thousands_of_attempts() -> None:
    policy = RetryPlan(kind="exponential", attempts=5000, delay_ms=1000, factor=2.0)
    assert delay_ms(policy, 4000, random.Random(1)) == MAX_DELAY_MS


def test_the_policy_maximum_still_applies() -> None:
    policy = RetryPlan(kind="exponential", attempts=50, delay_ms=1000, factor=3.0, max_delay_ms=60_000)
    assert [delay_ms(policy, n) for n in (1, 2, 3, 4, 5, 40)] == [1000, 3000, 9000, 27000, 60_000, 60_000]
