"""A tiny run of the benchmark's tqflow adapter (bench/tqflow_adapter.py) and of the report's
ratio logic. The benchmark itself never runs under pytest: `python bench/run.py` does that."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "bench"


def bench_module(name: str) -> ModuleType:
    """bench/<name>.py by its path (other test folders have modules of the same names)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


report = bench_module("report")


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
    assert "| drain, 2 worker processes (jobs/s) | 300 | 100 (huey) | 3.00x | >= 2x | yes |" in text
    assert "| latency p50 (ms) | 2.00 | 1.00 (huey) | 0.50x |" in text
    assert "| latency p99 (ms) | 4.00 | 8.00 (huey) | 2.00x | no worse | yes |" in text
    assert (tmp_path / "table-x.md").exists()


def quiet(others: float = 1.0, steal: float = 0.0) -> dict[str, object]:
    return {
        "load1_before": 0.8,
        "load5_before": 0.4,
        "load15_before": 0.2,
        "cpu_before_pct": 30.0,
        "others_before_pct": others,
        "own_before_pct": 29.0,
        "steal_before_pct": steal,
        "load1_max": 1.5,
        "cpu_pct": 90.0,
        "others_pct": 1.0,
        "steal_pct": steal,
        "secs": 1.0,
        "settled_s": 0.0,
        "busy": others > 10.0 or steal > 5.0,
    }


def test_report_marks_busy_measurements_and_compares_enqueue_with_the_floor(tmp_path: Path) -> None:
    raw = tmp_path / "raw-y.jsonl"
    records = [
        {"kind": "settings", "runs": 2, "n": 100, "busy_load": 0.5, "busy_cpu": 10.0, "busy_steal": 5.0}
        | {"loadavg_at_start": [0.2, 0.1, 0.1], "busy_at_start": False},
        {"lib": "tqflow", "kind": "floor", "run": 1, "rate": 10000.0, "machine": quiet()},
        {"lib": "tqflow", "kind": "enqueue", "run": 1, "rate": 8000.0, "machine": quiet()},
        {"lib": "tqflow", "kind": "floor", "run": 2, "rate": 20000.0, "machine": quiet()},
        {"lib": "tqflow", "kind": "enqueue", "run": 2, "rate": 12000.0, "machine": quiet()},
        {"lib": "bullmq", "kind": "enqueue", "run": 1, "rate": 4000.0, "machine": quiet()},
        {"lib": "tqflow", "kind": "drain", "run": 1, "rate": 300.0, "machine": quiet(others=45.0)},
        {"lib": "bullmq", "kind": "drain", "run": 1, "rate": 200.0, "machine": quiet(steal=9.0)},
        {"kind": "end", "secs": 90.0},
    ]
    raw.write_text("".join(json.dumps(r) + "\n" for r in records))
    text = report.report(raw)
    assert (
        "**BUSY RUN: the 1-minute load average was 0.20 when the run began (at or below 0.5); 2 of 7 " in text
    )
    assert "The run took 1.5 min." in text
    # per-run ratios 0.8 and 0.6: median 0.70
    assert "| 10,000 (8,000-12,000) | floor 15,000 (10,000-20,000) (floors.py) | 0.70x |" in text
    assert "| >= 0.7x of the floor | yes |" in text
    assert "| drain, 2 worker processes (jobs/s) | 300\u2020 | 200 (bullmq)\u2020 | 1.50x | >= 2x |" in text
    assert "| tqflow | drain | 1 | 1 | 45 (45) / 1 (1) | 0.80 (0.80) | 1.50 | 0.0 |" in text

    quiet_raw = tmp_path / "raw-z.jsonl"
    quiet_raw.write_text("".join(json.dumps(r) + "\n" for r in records[:6]))
    assert (
        "Quiet run: the 1-minute load average was 0.20 when the run began (at or below 0.5), "
        "and none of the 5 measurements was busy" in report.report(quiet_raw)
    )


def test_the_harness_records_the_machine_around_a_measurement() -> None:
    harness = bench_module("harness")
    never = harness.Machine(busy_steal=100.0, busy_cpu=101.0, settle=0.0, period=0.1, lookback=0.2)
    always = harness.Machine(busy_steal=-1.0, busy_cpu=101.0, settle=0.0, period=0.1)
    try:
        with never.watch() as calm, always.watch() as loaded:
            sum(range(200_000))  # something to measure
            time.sleep(0.3)
    finally:
        never.stop()
        always.stop()
    for info in (calm, loaded):
        assert info["load1_before"] >= 0 and info["load1_max"] >= 0
        assert 0 <= info["cpu_pct"] <= 100 and 0 <= info["steal_pct"] <= 100
        assert 0 <= info["cpu_before_pct"] <= 100 and info["secs"] >= 0.3
        assert 0 <= info["others_pct"] <= info["cpu_pct"] + 1 and 0 <= info["own_before_pct"] <= 100
    assert calm["busy"] is False and loaded["busy"] is True
    assert "BUSY" in harness.machine_note(loaded) and "BUSY" not in harness.machine_note(calm)


def test_the_benchmarks_own_cpu_is_not_counted_as_others() -> None:
    harness = bench_module("harness")
    before = (time.monotonic(), 0.0, harness.read_cpu(), harness.own_ticks(os.getpid()))
    end = time.process_time() + 0.5
    while time.process_time() < end:  # half a second of this process's own CPU
        pass
    after = (time.monotonic(), 0.0, harness.read_cpu(), harness.own_ticks(os.getpid()))
    own = after[3] - before[3]
    assert own >= 30  # clock ticks (100 a second): this process's burn is seen as the benchmark's
    busy, steal, others = harness.usage(before, after)
    assert busy >= 0 and steal >= 0 and 0 <= others <= busy
