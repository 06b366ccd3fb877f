"""The tools that measure issue 12's floors run end to end on a few jobs and print their rows (no figure is
asserted: they are read by people, from a quiet machine). bench/sync_enqueue.py's floor rows once sent a
script call the store no longer takes, and nothing ran the tool until a figure was wanted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_tool(*args: str, timeout: float = 240) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=BENCH)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_sync_enqueue_prints_the_native_path_beside_its_floors(redis_url: str) -> None:
    out = run_tool("sync_enqueue.py", "--n", "100", "--runs", "1", "--url", redis_url)
    for row in ("SyncClient.enqueue, native", "floor: sync EVALSHA enqueue.lua", "on a held connection"):
        assert row in out, out
    assert "native / floor: same, on a held connection (no pool):" in out, out


def test_latency_floor_prints_each_bare_hand_off_and_tqflow() -> None:
    modes = "list-sync,streams-noack,streams-async,tqflow-1"
    out = run_tool("latency_floor.py", "--n", "20", "--rounds", "1", "--only", modes)
    medians = out.split("medians of 1 rounds", 1)[1].splitlines()[1:]
    assert [line.split()[0] for line in medians] == modes.split(","), out
    assert all(" p50 " in line and " p99 " in line for line in medians), out


def test_dag_only_times_a_run_and_prints_its_jobs() -> None:
    out = run_tool("dag_only.py", "--children", "10", "--runs", "1")
    assert "median" in out and "Redis CPU a run" in out, out
    assert "children queued" in out and "join queued" in out, out


def test_drain_floor_prints_the_drain_against_its_cpu_floor() -> None:
    out = run_tool("drain_floor.py", "--jobs", "1000")
    assert "jobs/s; Redis" in out and "CPU floor" in out and "% of it" in out, out


def test_sync_enqueue_runs_the_process_it_counts_instructions_of(redis_url: str) -> None:
    """`--instructions` counts this process under valgrind (the next test, slow: ≈ 60 s)."""
    assert run_tool("sync_enqueue.py", "--child-calls", "20", "--url", redis_url) == ""
    assert run_tool("sync_enqueue.py", "--child-calls", "20", "--asyncio", "--url", redis_url) == ""


def test_request_floor_prints_what_one_request_costs_redis() -> None:
    out = run_tool("request_floor.py", "--n", "200", "--rounds", "1")
    for request in ("PING", "XADD", "EVALSHA `return 1`"):
        line = next(line for line in out.splitlines() if line.strip().startswith(request))
        assert "µs a request (sys" in line and line.rstrip().endswith("/s"), out


@pytest.mark.slow
def test_sync_enqueue_counts_the_producers_instructions_a_call(redis_url: str) -> None:
    out = run_tool("sync_enqueue.py", "--instructions", "--runs", "1", "--url", redis_url)
    count = out.split("SyncClient.enqueue, native: ", 1)[1].split(" instructions a call", 1)[0]
    assert 10_000 < int(count.replace(",", "")) < 2_000_000, out  # a count a call, not a whole process's
