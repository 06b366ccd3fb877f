"""Tasks of the sub-flow example (examples/subflows): a nightly flow that runs a report flow per region."""

from __future__ import annotations

from tqflow.runtime import task

SALES = {"eu": [120, 80, 45], "us": [300, 20], "apac": []}


@task
def load_sales(region: str) -> list[int]:
    if region not in SALES:
        raise LookupError(f"no sales data for region {region!r}")
    return SALES[region]


@task
def add_up(amounts: list[int]) -> int:
    return sum(amounts)


@task
def publish(eu: int, us: int) -> str:
    return f"eu {eu}, us {us}, together {eu + us}"


@task
def page(message: str) -> str:
    return f"paged on-call: {message}"
