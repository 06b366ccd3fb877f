"""schemathesis over the served OpenAPI spec: generated requests to every operation, never a 5xx.

Small by default: TQFLOW_FUZZ_EXAMPLES examples per operation (15 unless set; set 500 for a long run).
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tqflow.runtime.client import Client

from .conftest import watch_plan


def fuzz(base: str, examples: int, statuses: set[int]) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    for operation in operations:
        checker(operation, base, examples, failures, statuses)()
    return failures


def checker(
    operation: schemathesis.APIOperation, base: str, examples: int, failures: list[str], statuses: set[int]
) -> Any:
    @given(data=st.data())
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy())
        response = case.call(base_url=base, timeout=10)
        statuses.add(response.status_code)
        if response.status_code >= 500:
            failures.append(
                f"{operation.label}: {response.status_code} for {case.path} {case.query} {case.body}"
            )

    return check


async def test_fuzzing_the_openapi_spec_finds_no_server_error(api_server: str, client: Client) -> None:
    await client.deploy(watch_plan())
    await client.start_run("watch", {"ms": "1"})
    examples = int(os.environ.get("TQFLOW_FUZZ_EXAMPLES", "15"))
    statuses: set[int] = set()
    assert fuzz(api_server, examples, statuses) == []
    assert {200, 404, 422} <= statuses, statuses  # it reached the routes with good input and bad
