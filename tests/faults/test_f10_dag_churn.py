"""F10: a 500-job DAG with 5 % failing tasks while workers are SIGKILLed and restarted (RELIABILITY.md).
An oracle computes each job's expected end from its upstream jobs' ends: a job runs only if its conditions
held (data from succeeded jobs, its `after` condition true), descendants of failures end skipped, and no
job is left non-terminal.

Slice by default (150 jobs); `TQFLOW_FAULT_SCALE=full pytest -m faults tests/faults/test_f10_dag_churn.py -s`.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness import FULL, HERE, Ledger, Workers, seeded, wait_all

from tqflow.compiler import compile_file
from tqflow.runtime.client import Client

pytestmark = pytest.mark.faults
TERMINAL = {"succeeded", "dead", "skipped"}


@dataclass
class Node:
    name: str
    fail: bool
    ms: int
    data: list[str] = field(default_factory=list)  # upstream jobs whose output it reads
    after: tuple[str, str] | None = None  # (job, "failed" | "done")


def make_dag(rng: random.Random, size: int) -> list[Node]:
    nodes: list[Node] = []
    for i in range(size):
        node = Node(f"j{i}", rng.random() < 0.05, rng.randint(30, 150))
        if i >= 5:
            node.data = sorted({f"j{rng.randrange(max(0, i - 40), i)}" for _ in range(rng.randint(0, 2))})
            target = f"j{rng.randrange(max(0, i - 40), i)}"
            if rng.random() < 0.15 and target not in node.data:  # else the compiler sees it can never run
                node.after = (target, rng.choice(["failed", "done"]))
        nodes.append(node)
    return nodes


def source(nodes: list[Node]) -> str:
    lines = ["use dag_tasks as t", "", "flow dag {"]
    for node in nodes:
        args = [f'key="{node.name}"', f"fail={str(node.fail).lower()}", f"ms={node.ms}"]
        args += [f"{slot}={up}.out" for slot, up in zip("ab", node.data, strict=False)]
        tail = f" {{\n    after {node.after[0]}.{node.after[1]}\n  }}" if node.after else ""
        lines.append(f"  job {node.name} = t.step({', '.join(args)}){tail}")
    return "\n".join([*lines, "}", ""])


def expected(nodes: list[Node], states: dict[str, str]) -> dict[str, str]:
    """What each job must end as, given how its upstream jobs actually ended."""
    want: dict[str, str] = {}
    for node in nodes:
        runs = all(states[up] == "succeeded" for up in node.data)
        if runs and node.after:
            up, status = node.after
            runs = states[up] == "dead" if status == "failed" else states[up] in TERMINAL
        want[node.name] = ("dead" if node.fail else "succeeded") if runs else "skipped"
    return want


async def test_f10_dag_with_failures_under_churn(client: Client, redis_url: str, tmp_path: Path) -> None:
    rng = seeded("F10")
    size, runs_n, kill_every, churn_s = (500, 4, 2.0, 20.0) if FULL else (150, 1, 1.0, 4.0)
    nodes = make_dag(rng, size)
    shutil.copy(HERE / "flows" / "dag_tasks.py", tmp_path / "dag_tasks.py")
    for _ in range(5):  # drop the `after` of any job the compiler proves can never run
        (tmp_path / "dag.tqflow").write_text(source(nodes))
        result = compile_file(tmp_path / "dag.tqflow")
        never = [re.findall(r"job `j(\d+)` can never run", d.message) for d in result.diagnostics]
        if result.plan is not None or not any(never):
            break
        for found in never:
            for n in found:
                nodes[int(n)].after = None
    assert result.plan is not None, [d.message for d in result.diagnostics][:5]
    await client.deploy(result.plan)
    redis = client.redis
    workers = Workers(redis_url, client.keys.namespace, tmp_path / "ledger", extra=["--tasks", "dag_tasks"])
    try:
        for _ in range(3):
            workers.start()
        await workers.ready(redis, client.keys, 3)
        run_ids = [await client.start_run("dag", {}) for _ in range(runs_n)]
        began = time.monotonic()
        while time.monotonic() - began < churn_s:
            await asyncio.sleep(kill_every)
            workers.signal(rng.choice(workers.alive()), signal.SIGKILL)
            workers.start()
        await wait_all(redis, client.keys, dict.fromkeys(run_ids, ""), timeout=120)
        took = time.monotonic() - began
        ledger = Ledger.read(workers.ledger)
        finals = []
        for run in run_ids:
            async with redis.pipeline(transaction=False) as pipe:
                for node in nodes:
                    pipe.hget(client.keys.job(f"{run}.{node.name}"), "state")
                finals.append(dict(zip([n.name for n in nodes], await pipe.execute(), strict=True)))
    finally:
        workers.stop_all()
    non_terminal = sum(1 for states in finals for s in states.values() if s not in TERMINAL)
    wrong = [
        (name, states[name], want)
        for states in finals
        for name, want in expected(nodes, states).items()
        if states[name] != want
    ]
    # Keys are per job name, shared by the runs: a job that must be skipped in every run never starts.
    skipped_everywhere = {
        n.name for n in nodes if all(expected(nodes, states)[n.name] == "skipped" for states in finals)
    }
    ran_wrongly = sorted(k for k in skipped_everywhere if k in ledger.starts)
    counts = {s: sum(1 for st in finals for v in st.values() if v == s) for s in sorted(TERMINAL)}
    print(
        f"[F10] runs={runs_n} jobs_per_run={size} failing={sum(n.fail for n in nodes)}"
        f" kills={len(workers.killed)}"
        f" ends={counts} non_terminal={non_terminal} wrong_end={len(wrong)}"
        f" started_though_conditions_false={len(ran_wrongly)} all_terminal_after_s={took:.1f}"
    )
    assert non_terminal == 0 and not wrong and not ran_wrongly, (wrong[:5], ran_wrongly[:5])
