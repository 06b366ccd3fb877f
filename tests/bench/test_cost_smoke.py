"""bench/cost.py runs end to end on a few jobs and prints a row per scenario (no figure is asserted: the
per-job CPU it measures is read by people, on a quiet machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_cost_prints_every_scenario() -> None:
    args = [sys.executable, str(BENCH / "cost.py"), "--n", "300", "--runs", "4", "--flow-width", "3"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=BENCH)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0] for line in done.stdout.splitlines() if line.strip()}
    assert {"streams", "bulk", "one-by-one", "flow", "load"} <= rows, done.stdout
