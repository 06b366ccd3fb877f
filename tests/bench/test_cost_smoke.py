"""bench/cost.py runs end to end on a few jobs and prints a row per scenario (no figure is asserted: the
per-job CPU it measures is read by people, on a quiet machine)."""

from __future__ import annotations

import re
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


def test_cost_rounds_print_the_medians_and_what_a_limit_adds() -> None:
    args = [sys.executable, str(BENCH / "cost.py"), "--n", "200", "--only", "bulk,concurrency,rate"]
    args += ["--rounds", "2", "--drain", "scripts"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=BENCH)
    assert done.returncode == 0, done.stderr[-2000:]
    medians = done.stdout.split("medians of 2 interleaved rounds", 1)[1].splitlines()[1:]
    assert [line.split()[0] for line in medians] == ["bulk", "bulk+concurrency", "bulk+rate"], done.stdout
    assert all("extra over bulk: median" in line for line in medians[1:]), done.stdout


def test_the_limit_profile_prints_each_command() -> None:
    args = [sys.executable, str(BENCH / "limit_profile.py"), "--jobs", "400", "--reps", "1"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=BENCH)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.endswith(" µs")]
    assert len(rows) == 9 and rows[0].startswith("zset holders, 10 a call"), done.stdout


def test_the_limit_instructions_tool_prints_what_each_limit_adds() -> None:
    """bench/limit_instructions.py under callgrind, on a few jobs (valgrind is needed, as for the tool)."""
    args = [sys.executable, str(BENCH / "limit_instructions.py"), "--small", "20", "--large", "60"]
    args += ["--ipus", "8000"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=BENCH.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert set(rows) == {"unlimited", "options", "concurrency", "rate"}, done.stdout
    for name in ("options", "concurrency", "rate"):
        assert " extra " in rows[name] and " µs " in rows[name], done.stdout
    assert "(µs at 8,000 instructions per µs, given)" in done.stdout


def test_callgrind_counts_the_servers_instructions_per_job() -> None:
    """`--callgrind` runs the private redis-server under valgrind and prints its instructions per job,
    split into enqueue and drain (the load-independent figure docs/benchmarks.md quotes)."""
    args = [sys.executable, str(BENCH / "cost.py"), "--callgrind", "--n", "100", "--no-scripts"]
    args += ["--drain", "scripts", "--only", "streams,bulk"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=BENCH)
    assert done.returncode == 0, done.stderr[-2000:]
    section = done.stdout.split("redis-server instructions per job", 1)[1].splitlines()[1:3]
    counts = {}
    for line in section:
        found = re.fullmatch(r"\s+(.+?)\s+([\d,]+)\s+\(enqueue ([\d,]+), drain ([\d,]+)\)", line)
        assert found is not None, done.stdout
        whole, enqueue, drain = (int(v.replace(",", "")) for v in found.groups()[1:])
        assert 0 < enqueue < whole and abs(enqueue + drain - whole) <= 1, line
        counts[found[1]] = whole
    # a job through the scripts costs the server more than a bare Streams entry doing the same work
    assert counts["bulk"] > counts["streams (ref)"] > 0, done.stdout


def test_cachegrind_prints_misses_per_job_and_the_profile_names_where(tmp_path: Path) -> None:
    """`--cachegrind` runs the private server under callgrind's cache and branch simulation and prints each
    scenario's simulated events per job beside the bare queue's; `no-expire` (the end record without its
    PEXPIRE) costs fewer instructions than `bulk`; bench/cache_profile.py reads a kept dump by function."""
    args = [sys.executable, str(BENCH / "cost.py"), "--cachegrind", "--n", "100", "--no-scripts"]
    args += ["--drain", "scripts", "--only", "streams,streams-trim,bulk,no-expire,presized"]
    args += ["--callgrind-out", str(tmp_path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=BENCH)
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout.split("redis-server per job, simulated (I1 32768,8,64", 1)[1]
    whole = table.split("  enqueue:", 1)[0].splitlines()[3:8]
    events = {}
    for line in whole:
        name, *cells = re.split(r"\s{2,}", line.strip())
        events[name] = [float(c.replace(",", "")) for c in " ".join(cells).split()]
    assert list(events) == [
        "streams (ref)",
        "streams-trim (ref)",
        "bulk",
        "bulk,no-expire",
        "bulk,presized",
    ], done.stdout
    for name, row in events.items():  # instr, I1, D1, LL, cond, mispred, ind, mispred, cycles, IPC
        assert len(row) == 10 and row[0] > 0 and row[8] > row[0], (name, row)
    assert events["bulk,no-expire"][0] < events["bulk"][0], done.stdout
    assert "enqueue + drain, against the bare Streams queue (x):" in table
    # dumps: the warm-up's 1 and 2, then each scenario's enqueue and drain: bulk's drain is the 8th
    dump = next(tmp_path.glob("cg.out.*.8"))
    args = [sys.executable, str(BENCH / "cache_profile.py"), str(dump), "--jobs", "100", "--top", "5"]
    profile = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=BENCH)
    assert profile.returncode == 0, profile.stderr[-2000:]
    assert "part of redis-server" in profile.stdout and "the rest (commands" in profile.stdout, profile.stdout
