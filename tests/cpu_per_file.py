"""CPU seconds per test file, including the subprocesses a test starts and waits for.

Opt-in pytest plugin (never loaded by the default run):

    TQ_CPU_DIR=/tmp/cpu .venv/bin/pytest -q -p cpu_per_file
    .venv/bin/python tests/cpu_per_file.py /tmp/cpu      # table, largest first

Each pytest process that runs tests (each xdist worker; the one under -n 0) writes
one JSON file into TQ_CPU_DIR: its
collection CPU and, per test file, user+sys of the process itself plus its reaped children
(RUSAGE_CHILDREN counts a child only once it has been waited for, so a server kept by a session fixture
is charged to the session's end; that and interpreter/plugin startup are reported as "<outside tests: ...>").
CPU, not wall: the figures do not depend on the load the way timings do.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest

_SESSION_TEARDOWN = "<outside tests: startup, session fixtures, reaped servers>"
_COLLECTION = "<collection>"


def _cpu_seconds() -> float:
    """User+sys CPU of this process and of its reaped children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class _CpuRecorder:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.per_file: dict[str, float] = defaultdict(float)
        self.tests_per_file: dict[str, int] = defaultdict(int)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_collection(self) -> Generator[None, None, None]:
        before = _cpu_seconds()
        yield
        self.per_file[_COLLECTION] += _cpu_seconds() - before

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        # Setup, call and teardown together: module fixtures are charged to the file that uses them.
        before = _cpu_seconds()
        yield
        file = item.nodeid.split("::", 1)[0]
        self.per_file[file] += _cpu_seconds() - before
        self.tests_per_file[file] += 1

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if not hasattr(config, "workerinput") and config.getoption("dist", "no") != "no":
            return  # the xdist controller: its reaped children are the workers, which write their own
        accounted = sum(self.per_file.values())
        self.per_file[_SESSION_TEARDOWN] += max(0.0, _cpu_seconds() - accounted)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "controller")
        record = {"worker": worker, "cpu": dict(self.per_file), "tests": dict(self.tests_per_file)}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"cpu-{worker}-{os.getpid()}.json").write_text(json.dumps(record, indent=1))


def pytest_configure(config: pytest.Config) -> None:
    out = os.environ.get("TQ_CPU_DIR")
    if not out:
        raise pytest.UsageError("cpu_per_file: set TQ_CPU_DIR to the directory the per-process records go to")
    config.pluginmanager.register(_CpuRecorder(Path(out)), "cpu_per_file_recorder")


def summarize(out_dir: Path) -> str:
    """One table over every process's record: CPU per file, largest first; collection per process."""
    per_file: dict[str, float] = defaultdict(float)
    tests: dict[str, int] = defaultdict(int)
    lines: list[str] = []
    records = sorted(out_dir.glob("cpu-*.json"))
    if not records:
        raise SystemExit(f"no cpu-*.json records in {out_dir}")
    for path in records:
        record = json.loads(path.read_text())
        lines.append(f"{record['worker']:>12}  collection {record['cpu'].get(_COLLECTION, 0.0):6.1f} s")
        for file, seconds in record["cpu"].items():
            per_file[file] += seconds
        for file, count in record["tests"].items():
            tests[file] += count
    lines.append(f"{'CPU s':>8}  {'tests':>5}  file")
    for file, seconds in sorted(per_file.items(), key=lambda kv: -kv[1]):
        lines.append(f"{seconds:8.1f}  {tests.get(file, 0):5d}  {file}")
    lines.append(f"{sum(per_file.values()):8.1f}  {sum(tests.values()):5d}  total (all processes)")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tests/cpu_per_file.py TQ_CPU_DIR")
    print(summarize(Path(sys.argv[1])))
