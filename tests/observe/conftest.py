"""Fixtures for the observability tests: their own flows and tasks (tests/observe/flows)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tqflow.compiler import compile_file
from tqflow.plan import Plan
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.task import Task

OBS_FLOWS = Path(__file__).parent / "flows"
WATCH = OBS_FLOWS / "watch.tqflow"


def watch_plan() -> Plan:
    result = compile_file(WATCH)
    assert result.plan is not None, [d.message for d in result.diagnostics]
    return result.plan


@pytest.fixture
def obs_tasks() -> dict[str, Task[Any, Any]]:
    return load_tasks(["observe_tasks"], [OBS_FLOWS])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of `count` consecutive loopback ports that are all free now (`tqrun worker --processes N
    --metrics-port P` serves on P..P+N-1): a free port's next one may be another test's server, and the
    second process then could not listen (CI of 2026-12-04)."""
    for _ in range(200):
        base = free_port()
        if base + count - 1 > 65535:
            continue
        held = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the server exited with {proc.returncode}: {proc.stderr and proc.stderr.read()!r}"
            )
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered at {url}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def api_server(redis_url: str, namespace: str) -> Iterator[str]:
    """`tqrun api` in a subprocess on a free loopback port; yields its base URL."""
    yield from serve_api(redis_url, namespace)


def serve_api(redis_url: str, namespace: str, *options: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "tqflow.cli.tqrun", "api", "--port", str(port), *options]
    proc = subprocess.Popen(
        [*command, "--redis", redis_url, "--namespace", namespace], stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/health", proc)
        yield base
    finally:
        stop_process(proc)
