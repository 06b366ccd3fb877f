"""How long `tqc check` takes on generated flows: N jobs with 2 edges each (python bench/check_large.py).

Measured on the shared 2-core machine (2026-11-27, other work running): 500 jobs 0.22 s, 5,000 jobs
(9,999 edges) 1.51 s, 50,000 jobs 16 s -- linear; about 80% of it is parsing (Lark LALR in Python).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tqflow.compiler import compile_file

TASKS = """from tqflow.runtime import task


@task
def step(a: int, b: int) -> int:
    return a + b
"""


def flow(jobs: int) -> str:
    lines = ["use tasks as t", "", "flow big {"]
    lines.append("  job j0 = t.step(a=1, b=2)")
    for i in range(1, jobs):
        a, b = (i - 1, max(0, i - 2 - i % 7))
        lines.append(f"  job j{i} = t.step(a=j{a}.out, b=j{b}.out)")
    lines.append("}")
    return "\n".join(lines) + "\n"


def measure(jobs: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "tasks.py").write_text(TASKS)
        path = Path(folder, "big.tqflow")
        path.write_text(flow(jobs))
        start = time.perf_counter()
        result = compile_file(path)
        elapsed = time.perf_counter() - start
        assert result.ok, [d.message for d in result.diagnostics][:3]
        return elapsed


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]] or [500, 5000, 50_000]:
        print(f"{n:>6} jobs, {2 * n - 1:>6} edges: {measure(n):.2f} s")
