"""bench/worker_cost.py runs end to end on a few jobs (without valgrind: under it a run takes a minute) and
prints the worker's CPU per job and a profile (no figure is asserted: they are read by people)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_worker_cost_prints_the_cpu_per_job_and_a_profile() -> None:
    args = [sys.executable, str(BENCH / "worker_cost.py"), "--tool", "none", "--sizes", "40,120"]
    args += ["--profile", "5"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=BENCH)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    # a figure is printed, its value not checked: at 40 and 120 jobs the start-up's own variation can
    # exceed the difference (it came out negative at load 8)
    per_job = [line for line in lines if re.fullmatch(r"worker CPU µs per job \(.*\): -?\d+\.\d", line)]
    assert len(per_job) == 1, done.stdout
    assert any(re.fullmatch(r"  \(40: [\d.]+ s, 120: [\d.]+ s of CPU while draining\)", x) for x in lines)
    assert any("cProfile of the 120-job drain" in line for line in lines), done.stdout
    assert lines[0].startswith("load average"), done.stdout


def test_the_instruction_count_is_read_from_the_summary_line(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from worker_cost import summary
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path / "cachegrind.out"
    out.write_text("desc: I1 cache: 32768 B\ncmd: python\nevents: Ir\nfl=x.c\n1 5\nsummary: 2656106696\n")
    assert summary(out) == 2_656_106_696
