"""`tqrun worker --metrics-port` in real processes: per-process endpoints add up; JSON logs with context."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tqflow.runtime.client import Client
from tqflow.runtime.logging import PAYLOAD_KEYS, drop_payloads

from .conftest import WATCH, free_ports, stop_process, wait_http, watch_plan

CONTEXT = ("job", "run", "flow", "task", "attempt", "worker")


def started_total(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "tqflow_jobs_started"
        for sample in family.samples
        if sample.name == "tqflow_jobs_started_total"
    )


async def scrape_until(ports: list[int], done: Callable[[list[str]], bool], timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        texts = [httpx.get(f"http://127.0.0.1:{port}/metrics").text for port in ports]
        if done(texts) or time.monotonic() > deadline:
            return texts
        await asyncio.sleep(0.1)


async def wait_for_key(client: Client, pattern: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if [k async for k in client.redis.scan_iter(match=pattern)]:
            await asyncio.sleep(0.2)  # let the log line reach stderr
            return
        await asyncio.sleep(0.1)


async def test_two_worker_processes_serve_metrics_and_log_json(
    client: Client, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    """`tqrun worker --processes 2 --metrics-port P` with PROMETHEUS_MULTIPROC_DIR: process i serves on P+i
    and each endpoint shows the counts of both processes. (Without the folder each process serves only its
    own counts, as test_metrics shows in-process.) Logs are JSON lines with each job's context."""
    await client.deploy(watch_plan())
    alerts = tmp_path / "alerts.toml"
    alerts.write_text('[alerts]\npoll_seconds = 0.1\n\n[[alerts.route]]\nlog = "error"\non = ["job_dead"]\n')
    base = free_ports(2)
    ports = [base, base + 1]  # process i of `--processes 2` serves on base + i
    command = [sys.executable, "-m", "tqflow.cli.tqrun", "worker", str(WATCH), "--redis", redis_url]
    options = [
        "--namespace",
        namespace,
        "--log-level",
        "debug",
        "-c",
        "2",
        "--alerts",
        str(alerts),
        "-p",
        "2",
    ]
    (tmp_path / "prom").mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    workers = [
        subprocess.Popen([*command, *options, "--metrics-port", str(base)], stderr=subprocess.PIPE, env=env)
    ]
    try:
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/metrics", workers[0])
        runs = [await client.start_run("watch", {"ms": "100"}) for _ in range(4)]
        for run_id in runs:
            assert (await client.wait(run_id, 30)).state == "succeeded"
        # The last counts land just after the runs end (the hook runs once the end is written): poll.
        scraped = await scrape_until(ports, lambda texts: [started_total(t) for t in texts] == [16, 16])
        assert (await client.wait(await client.start_run("broken"), 30)).state == "failed"
        await wait_for_key(client, client.keys.prefix + ":alert:job_dead:*")  # the monitor polls every 0.1 s
    finally:
        for proc in workers:
            stop_process(proc)
    assert [started_total(text) for text in scraped] == [16, 16]  # 4 runs x 4 jobs, both processes
    assert "tqflow_queue_waiting" in scraped[0]

    lines = []
    for proc in workers:
        assert proc.stderr is not None
        lines += [json.loads(raw) for raw in proc.stderr.read().decode().splitlines()]  # all JSON
    job_lines = [line for line in lines if "job" in line]
    finished = [line for line in job_lines if line["event"] == "job finished"]
    assert len(finished) == 16 + 2  # and the broken run's two attempts
    alerts_sent = [line for line in lines if line.get("kind") == "job_dead"]
    assert len(alerts_sent) == 1 and "dead-lettered after 2 attempts" in alerts_sent[0]["event"]
    for line in job_lines:
        assert all(line.get(key) not in (None, "") for key in CONTEXT), line
        assert "result" not in line and "args" not in line


def test_payloads_are_hidden_unless_asked() -> None:
    event = {"event": "x", "args": {"card": "4111"}, "result": 1, "job": "j"}
    hidden = drop_payloads(None, "info", dict(event))
    assert hidden["job"] == "j" and all("hidden" in str(hidden[k]) for k in ("args", "result"))
    assert {"args", "result", "params"} <= set(PAYLOAD_KEYS)
