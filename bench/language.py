"""How long `tqc check` and `tqc fmt --check` take on large generated flows, as a user runs them.

Usage: .venv/bin/python bench/language.py [--runs 3] [--check-jobs 5000] [--fmt-jobs 50000] [--lark]
       [--formatted-only] [--src DIR]

Each figure is a fresh `tqc` process (start-up and imports included), timed from outside: the median
wall time of --runs runs and the median CPU time (user + sys of the child), with the load average before
each run. The flow is bench/check_large.py's (N jobs, 2 edges each); `fmt --check` gets it already
formatted (the common CI case: parse, print, compare) and once with its layout spoilt (parse, print,
parse the result again to prove the meaning kept; exit 1). `--lark` also times the Lark path alone
(TQFLOW_PARSER=lark); `--src OTHER/src` times another checkout (`git worktree add --detach /tmp/before
COMMIT`), for a before/after comparison.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from check_large import TASKS, flow

TQC = [sys.executable, "-c", "from tqflow.cli.tqc import main; main()"]


def timed(args: list[str], cwd: Path, env: dict[str, str], expect: int) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([*TQC, *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != expect:
        raise SystemExit(f"tqc {' '.join(args)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(name: str, args: list[str], cwd: Path, runs: int, env: dict[str, str], expect: int = 0) -> None:
    walls, cpus, loads = [], [], []
    for _ in range(runs):
        loads.append(os.getloadavg()[0])
        wall, cpu = timed(args, cwd, env, expect)
        walls.append(wall)
        cpus.append(cpu)
    print(
        f"{name:<44} wall {statistics.median(walls):6.2f} s  cpu {statistics.median(cpus):6.2f} s"
        f"  (runs {', '.join(f'{w:.2f}' for w in walls)}; load {', '.join(f'{x:.1f}' for x in loads)})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check-jobs", type=int, default=5000)
    parser.add_argument("--fmt-jobs", type=int, default=50_000)
    parser.add_argument("--lark", action="store_true", help="also time the Lark path alone")
    parser.add_argument("--formatted-only", action="store_true", help="skip the unformatted fmt --check run")
    parser.add_argument("--src", help="import tqflow from this src folder (another checkout: a before/after)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "tasks.py").write_text(TASKS)
        (folder / "check.tqflow").write_text(flow(options.check_jobs))
        (folder / "fmt.tqflow").write_text(flow(options.fmt_jobs))
        (folder / "spoilt.tqflow").write_text(flow(options.fmt_jobs).replace(", b=", ",  b="))
        paths = [("", {})] + ([(" [lark]", {"TQFLOW_PARSER": "lark"})] if options.lark else [])
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus", flush=True)
        for suffix, extra in paths:
            path = [str(folder), *([options.src] if options.src else [])]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), **extra}
            jobs = f"{options.check_jobs:,}"
            measure(f"tqc check, {jobs} jobs{suffix}", ["check", "check.tqflow"], folder, options.runs, env)
            jobs = f"{options.fmt_jobs:,}"
            measure(
                f"tqc fmt --check, {jobs} jobs{suffix}",
                ["fmt", "--check", "fmt.tqflow"],
                folder,
                options.runs,
                env,
            )
            if options.formatted_only:
                continue
            measure(
                f"tqc fmt --check, {jobs} jobs, unformatted{suffix}",
                ["fmt", "--check", "spoilt.tqflow"],
                folder,
                options.runs,
                env,
                expect=1,
            )


if __name__ == "__main__":
    main()
