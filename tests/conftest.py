"""Fixtures: a real Redis (TQFLOW_TEST_REDIS_URL, else a private server for the session), a key
namespace per test, clients and workers that are closed when the test ends."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest


def cache_bytecode_outside_the_tree() -> None:
    """With PYTHONDONTWRITEBYTECODE=1 (set on the development machine and likely in CI) every pytest
    process and every Python a test starts (workers, `tqrun`, `tqc lsp`) compiled tqflow from source again
    and pytest re-rewrote every test module: ~7 s CPU per collecting process and ~0.15 s per subprocess.
    That setting keeps `__pycache__` out of the tree; a cache under .pytest_cache keeps it out too. Set
    before tqflow is imported below (xdist workers and subprocesses inherit the environment)."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return  # bytecode is written already (beside the sources or under the user's prefix)
    prefix = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache", "pycache"
    )
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False


cache_bytecode_outside_the_tree()

from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.servers import start_topology
from tqflow.runtime.task import Task
from tqflow.runtime.worker import Worker, WorkerSettings

from helpers import WorkerFactory


def pytest_configure(config: pytest.Config) -> None:
    """`pytest -m faults` runs the fault-injection tests at full scale; the default run keeps their slice
    (tests/faults/harness.py reads TQFLOW_FAULT_SCALE when it is imported, after this)."""
    if config.getoption("markexpr", "") == "faults":
        os.environ.setdefault("TQFLOW_FAULT_SCALE", "full")


# The longest files (wall time, from `--durations`), sent out first so that none of them starts near the end
# of the run and keeps it waiting: with 4 processes the run ends when its last file does. The sentinel
# failover file is later in the list: it waits for the cluster's (see `one_replicated_set_at_a_time`).
LONGEST_FIRST = (
    "tests/topology/test_failover.py",
    "tests/faults/test_f22_long_outage.py",
    "tests/observe/test_dashboard.py",
    "tests/faults/test_faults.py",
    "tests/test_quality.py",
    "tests/faults/test_f18_clock_skew.py",
    "tests/bench/test_worker_cost_smoke.py",
    "tests/bench/test_cost_smoke.py",
    "tests/topology/test_failover_sentinel.py",
    "tests/observe/test_api_fuzz.py",
    "tests/faults/test_f1_lean.py",
    "tests/faults/test_f4_leader_partition.py",
    "tests/faults/test_f10_dag_churn.py",
    "tests/faults/test_f13_blips.py",
    "tests/compiler/test_fast_parser.py",
    "tests/faults/test_f14_full_redis.py",
    "tests/faults/test_f7_poison.py",
    "tests/faults/test_f4_partition.py",
    "tests/test_user_types.py",
)
# Files that run a replicated set under load and count what a failover loses: two at once (six workers
# and two replicas on 2 cores) let a replica fall behind its master by more than the excused window.
ONE_AT_A_TIME = ("tests/topology/test_failover.py", "tests/topology/test_failover_sentinel.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first (a stable sort: a file's tests stay together and in order). Tests marked `slow`
    run only when asked for (`pytest -m slow`): the default run deselects them, as the marker says."""
    if "slow" not in (config.getoption("markexpr", "") or ""):
        slow = [item for item in items if item.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("slow")]
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="module", autouse=True)
def one_replicated_set_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """A lock across the xdist processes (and any other pytest run on this machine) around the modules in
    ONE_AT_A_TIME; the others pass straight through."""
    path = os.path.relpath(str(request.path), os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if path not in ONE_AT_A_TIME:
        yield
        return
    with open(os.path.join(tempfile.gettempdir(), "tqflow-tests-replicated-set.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """TQFLOW_TEST_REDIS_URL; else a private topology when TQFLOW_TEST_TOPOLOGY names one (cluster,
    cluster-replicas, sentinel, valkey, valkey-cluster: runtime/servers.py); else a private server."""
    url = os.environ.get("TQFLOW_TEST_REDIS_URL")
    if url:
        yield url
        return
    kind = os.environ.get("TQFLOW_TEST_TOPOLOGY")
    if kind:
        topology = start_topology(kind)
        try:
            yield topology.url
        finally:
            topology.stop()
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture(scope="session")
def tqflow_redis_url(redis_url: str) -> str:
    """The testing kit's fixtures (tqflow.testing, the `tqflow` fixture) use this session's Redis too."""
    return redis_url


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis(redis_url: str, namespace: str) -> AsyncIterator[Redis]:
    client = connect(redis_url, namespace=namespace)
    yield client
    # Remove only this test's keys: never flush a server we may share.
    keys = [k async for k in client.scan_iter(match=f"{{{namespace}}}*", count=1000)]
    for start in range(0, len(keys), 500):
        await client.unlink(*keys[start : start + 500])
    await client.aclose()


@pytest.fixture
async def client(redis: Redis, namespace: str) -> AsyncIterator[Client]:
    made = Client(redis, namespace)
    yield made
    await made.waiter.close()


@pytest.fixture
async def api(redis_url: str, namespace: str) -> AsyncIterator[httpx.AsyncClient]:
    """This test's namespace behind the REST API, in process (no server, no port)."""
    from tqflow.runtime.api.app import create_app  # here: only the API's tests pay for its import
    from tqflow.runtime.api.settings import ApiSettings

    app = create_app(ApiSettings(redis_url, namespace))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        yield http
    await app.state.services.close()


@pytest.fixture
async def start_worker(redis_url: str, namespace: str) -> AsyncIterator[WorkerFactory]:
    """Start in-process workers: `await start_worker(tasks, queues=[...], concurrency=N)`."""
    running: list[tuple[asyncio.Event, asyncio.Task[None], Redis]] = []

    async def start(tasks: dict[str, Task[Any, Any]], hooks: Sequence[Any] = (), **settings: Any) -> Worker:
        connection = connect(redis_url, namespace=namespace)
        # block_ms: an idle worker notices its stop at its next read; 100 ms, not 500, ends each test sooner
        worker = Worker(
            connection, tasks, namespace, WorkerSettings(**{"block_ms": 100, **settings}), hooks=hooks
        )
        stop = asyncio.Event()
        running.append((stop, asyncio.create_task(worker.run(stop)), connection))
        return worker

    yield start
    for stop, task, connection in running:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await connection.aclose()
