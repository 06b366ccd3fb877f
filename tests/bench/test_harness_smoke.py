"""A tiny run of the benchmark's tqflow adapter (bench/tqflow_adapter.py) and of the report's
ratio logic. The benchmark itself never runs under pytest: `python bench/run.py` does that."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import report  # noqa: E402


@pytest.fixture
def bench_env(redis_url: str, namespace: str) -> dict[str, str]:
    """The adapter pointed at the test Redis, its keys (queues and result lists) inside the namespace."""
    return {
        **os.environ,
        "PB_URL": redis_url,
        "PB_NAMESPACE": namespace,
        "PB_KEYS": f"{{{namespace}}}:pb",
        "PB_DELAY_LO": "0.1",
        "PB_DELAY_HI": "0.3",
        "PYTHONPATH": f"{BENCH / 'peers'}:{BENCH}",
    }


@pytest.fixture
def worker(bench_env: dict[str, str], redis_url: str, namespace: str) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "tqflow.cli.tqrun", "worker", "-m", "bench_tasks"]
    cmd += [
        "--redis",
        redis_url,
        "--namespace",
        namespace,
        "-q",
        "default",
        "-c",
        "20",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=BENCH / "peers", env=bench_env)
    yield proc
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def drive(env: dict[str, str], op: str, n: int) -> dict[str, float | list[float]]:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "peers" / "driver.py"), "tqflow", op, str(n)],
        cwd=BENCH / "peers",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def wait_for(r: Redis, key: str, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while int(r.llen(key)) < count:  # type: ignore[arg-type]
        assert time.monotonic() < deadline, f"{r.llen(key)}/{count} jobs done"
        time.sleep(0.05)


def test_the_tqflow_adapter_runs_every_operation(
    bench_env: dict[str, str], worker: subprocess.Popen[bytes], redis_url: str, namespace: str
) -> None:
    r = Redis.from_url(redis_url, decode_responses=True)
    done = f"{{{namespace}}}:pb:done"
    assert drive(bench_env, "enqueue", 30)["secs"] > 0  # type: ignore[operator]
    wait_for(r, done, 30)
    assert sorted(int(x) for x in r.lrange(done, 0, -1)) == list(range(30))
    latencies = drive(bench_env, "latency", 3)["ms"]
    assert isinstance(latencies, list) and len(latencies) == 3 and all(ms > 0 for ms in latencies)
    assert drive(bench_env, "dag", 20)["secs"] > 0  # type: ignore[operator]
    lateness = drive(bench_env, "delayed", 5)["ms"]
    assert isinstance(lateness, list) and len(lateness) == 5
    assert all(-1 < ms < 2000 for ms in lateness), lateness  # never early, not absurdly late
    r.delete(done)
    assert drive(bench_env, "bulk", 30)["secs"] > 0  # type: ignore[operator]
    wait_for(r, done, 30)
    assert worker.poll() is None
    r.close()


def test_report_ratios_say_better_above_one_in_both_directions(tmp_path: Path) -> None:
    raw = tmp_path / "raw-x.jsonl"
    records = [
        {"lib": "tqflow", "kind": "drain", "run": 1, "rate": 300.0},
        {"lib": "huey", "kind": "drain", "run": 1, "rate": 100.0},
        {"lib": "rq", "kind": "drain", "run": 1, "rate": 50.0},
        {"lib": "tqflow", "kind": "latency", "run": 1, "p50": 2.0, "p99": 4.0},
        {"lib": "huey", "kind": "latency", "run": 1, "p50": 1.0, "p99": 8.0},
    ]
    raw.write_text("".join(json.dumps(r) + "\n" for r in records))
    text = report.report(raw)
    assert (
        "| drain, 2 worker processes (jobs/s) | 300 | 100 (huey) | 3.00x | >= 5x | **no** (needs 5x) |"
        in text
    )
    assert "| latency p50 (ms) | 2.00 | 1.00 (huey) | 0.50x |" in text
    assert "| latency p99 (ms) | 4.00 | 8.00 (huey) | 2.00x | no worse | yes |" in text
    assert (tmp_path / "table-x.md").exists()
