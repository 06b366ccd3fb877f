"""The pytest plugin (entry point `pytest11: tqflow`): fixtures for testing a project that uses tqflow.

- `tqflow_redis_url` (session): a private real Redis (or TQFLOW_TEST_REDIS_URL); override it in a
  conftest.py to use your own.
- `tqflow_clock` (per test): a `MovableClock`, the runtime's clock for the test to move (`advance`,
  `run_for`); back to real time after the test.
- `tqflow` (per test, async): a `FlowTestEnv` on its own namespace: `run_flow`, `run_job`,
  `start_worker`, `client`; closed after the test (workers stopped, its keys removed).

The async fixture needs pytest-asyncio (any mode); without it only `tqflow_redis_url` is offered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tqflow.testing import FlowTestEnv, MovableClock, private_redis


@pytest.fixture(scope="session")
def tqflow_redis_url() -> Iterator[str]:
    with private_redis() as url:
        yield url


@pytest.fixture
def tqflow_clock() -> Iterator[MovableClock]:
    moved = MovableClock()
    try:
        yield moved
    finally:
        moved.reset()


try:
    import pytest_asyncio
except ImportError:  # the kit's async fixture needs pytest-asyncio
    HAVE_ASYNCIO = False
else:
    HAVE_ASYNCIO = True

if HAVE_ASYNCIO:

    @pytest_asyncio.fixture
    async def tqflow(tqflow_redis_url: str) -> AsyncIterator[FlowTestEnv]:
        env = FlowTestEnv(tqflow_redis_url)
        try:
            yield env
        finally:
            await env.close()
