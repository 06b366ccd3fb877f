"""A tiny run of the benchmark's tqflow adapter (bench/tqflow_adapter.py) and of the report's
ratio logic. The benchmark itself never runs under pytest: `python bench/run.py` does that."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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


# Every operation in one process (each driver process pays tqflow's import time once).
SCRIPT = """
import json, time
from redis import Redis
import common, tqflow_adapter as a
r = Redis.from_url(common.URL, decode_responses=True)
out = {"enqueue": a.enqueue(30)}
deadline = time.monotonic() + 15
while r.llen(common.DONE_KEY) < 30 and time.monotonic() < deadline:
    time.sleep(0.05)
out["done"] = sorted(int(x) for x in r.lrange(common.DONE_KEY, 0, -1))
out["latency"] = a.latency(3)
out["dag"] = a.dag(20)
out["delayed"] = a.delayed(5)
r.delete(common.DONE_KEY)
out["bulk"] = a.enqueue_bulk(30)
deadline = time.monotonic() + 15
while r.llen(common.DONE_KEY) < 30 and time.monotonic() < deadline:
    time.sleep(0.05)
out["bulk_done"] = r.llen(common.DONE_KEY)
print(json.dumps(out))
"""


def test_the_tqflow_adapter_runs_every_operation(
    bench_env: dict[str, str], worker: subprocess.Popen[bytes]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=BENCH / "peers",
        env=bench_env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["enqueue"] > 0 and out["done"] == list(range(30))
    assert len(out["latency"]) == 3 and all(ms > 0 for ms in out["latency"])
    assert out["dag"] > 0
    assert len(out["delayed"]) == 5
    assert all(-1 < ms < 2000 for ms in out["delayed"]), out["delayed"]  # never early, not absurdly late
    assert out["bulk"] > 0 and out["bulk_done"] == 30
    assert worker.poll() is None


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
