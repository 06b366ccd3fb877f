"""A slice of the lateness measurement (tests/runtime/lateness.py runs the full 10,000 jobs)."""

from __future__ import annotations

from lateness import measure  # type: ignore[import-not-found]


async def test_delayed_jobs_start_within_milliseconds_of_their_due_time(
    redis_url: str, namespace: str
) -> None:
    figures = await measure(redis_url, jobs=300, spread_s=1.5, namespace=namespace)
    assert figures["jobs"] == 300
    assert figures["min_ms"] >= 0  # never early
    assert figures["p50_ms"] <= 20, figures
    assert figures["p99_ms"] <= 250, figures
