"""A tiny run of the benchmark's BullMQ adapter (bench/peers/pb_bullmq.cjs) with the machine's Node against
the test Redis: every operation the harness uses, on a handful of jobs. bench/run.py's own installer puts
bullmq into bench/.node (npm ci of bench/node/package-lock.json) the first time. Needs node and npm: the
benchmark's Node peers exist only where Node does, so without them this test is skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "bench"
ADAPTER = BENCH / "peers" / "pb_bullmq.cjs"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node/npm not installed: the benchmark's BullMQ peer cannot run",
)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")  # by path: a unique name
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    assert run.ensure_node()
    return run.NODE_DIR / "node_modules"


@pytest.fixture
def bench_env(redis_url: str, namespace: str, node_modules: Path) -> Iterator[dict[str, str]]:
    """The adapter pointed at the test Redis, its queue and result lists inside the namespace."""
    env = {
        **os.environ,
        "PB_URL": redis_url,
        "PB_KEYS": f"{{{namespace}}}:pb",
        "PB_BULL_PREFIX": f"{{{namespace}}}:bull",
        "PB_DELAY_LO": "0.1",
        "PB_DELAY_HI": "0.3",
        "NODE_PATH": str(node_modules),
    }
    yield env
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=f"{{{namespace}}}*", count=1000))
    for start in range(0, len(keys), 500):
        r.unlink(*keys[start : start + 500])
    r.close()


def op(env: dict[str, str], *args: str) -> dict[str, object]:
    proc = subprocess.run(["node", str(ADAPTER), *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def wait_len(r: redis.Redis, key: str, n: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while int(r.llen(key)) < n and time.monotonic() < deadline:  # type: ignore[arg-type]
        time.sleep(0.05)
    return int(r.llen(key))  # type: ignore[arg-type]


def test_the_bullmq_adapter_runs_every_operation(bench_env: dict[str, str], redis_url: str) -> None:
    caps = op(bench_env, "caps")
    assert caps["bulk"] and caps["dag"] and caps["delayed"]
    assert str(caps["version"]).startswith("5.")
    two = caps["workers"]["2"]  # type: ignore[index]
    assert len(two["cmds"]) == 2 and two["cmds"][0][2:] == ["worker", "100"]

    done = f"{bench_env['PB_KEYS']}:done"
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    worker = subprocess.Popen(["node", str(ADAPTER), "worker", "20"], env=bench_env)
    try:
        enq = op(bench_env, "enqueue", "30")
        assert float(enq["secs"]) > 0  # type: ignore[arg-type]
        assert wait_len(r, done, 30) == 30
        assert sorted(int(x) for x in r.lrange(done, 0, -1)) == list(range(30))
        lat = op(bench_env, "latency", "3")["ms"]
        assert isinstance(lat, list) and len(lat) == 3 and all(ms > 0 for ms in lat)
        assert float(op(bench_env, "dag", "20")["secs"]) > 0  # type: ignore[arg-type]
        assert int(r.llen(done)) == 20  # the join ran after its 20 children (latency popped its own)
        late = op(bench_env, "delayed", "5")["ms"]
        assert isinstance(late, list) and len(late) == 5
        assert all(-1 < ms < 2000 for ms in late), late  # never early, not absurdly late
        r.delete(done)
        assert float(op(bench_env, "bulk", "30")["secs"]) > 0  # type: ignore[arg-type]
        assert wait_len(r, done, 30) == 30
        assert worker.poll() is None
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)
        r.close()
    assert worker.returncode == 0  # SIGTERM closes the Worker and exits cleanly
