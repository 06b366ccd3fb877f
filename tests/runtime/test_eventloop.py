"""The worker's event loop: uvloop by default when installed, asyncio on request, a clear error otherwise;
and a `tqrun worker` on each loop runs jobs against Redis."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from typing import Any

import pytest

from tqflow.runtime import eventloop
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks

from helpers import FLOWS

load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def loop_kind() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_auto_is_uvloop_when_installed_and_asyncio_on_request() -> None:
    assert eventloop.resolve("auto") == ("uvloop" if HAS_UVLOOP else "asyncio")
    assert eventloop.run(loop_kind(), "asyncio") == "asyncio"
    if HAS_UVLOOP:
        assert eventloop.run(loop_kind(), "auto") == "uvloop"
        assert eventloop.run(loop_kind(), "uvloop") == "uvloop"


def test_an_unknown_or_missing_loop_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(eventloop.EventLoopError, match="'trio' is not one of auto, uvloop, asyncio"):
        eventloop.resolve("trio")
    monkeypatch.setattr(eventloop.importlib.util, "find_spec", lambda name: None)
    assert eventloop.resolve("auto") == "asyncio"
    with pytest.raises(eventloop.EventLoopError, match=r"uvloop .* not installed"):
        eventloop.resolve("uvloop")


def test_tqrun_refuses_an_unknown_loop() -> None:
    command = [sys.executable, "-m", "tqflow.cli.tqrun", "worker", "-m", "job_tasks", "--loop", "trio"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ})
    assert done.returncode == 2 and "'trio' is not one of" in done.stderr, done.stderr


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_a_tqrun_worker_on_each_loop_runs_jobs(
    loop: str, client: Client, redis_url: str, namespace: str
) -> None:
    if loop == "uvloop" and not HAS_UVLOOP:
        pytest.skip("uvloop is not installed on this platform")
    env: dict[str, Any] = {
        **os.environ,
        "PYTHONPATH": f"{FLOWS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "TQFLOW_EVENT_LOOP": loop,  # the option's environment variable
    }
    command = [sys.executable, "-m", "tqflow.cli.tqrun", "worker", "-m", "job_tasks", "-c", "20"]
    command += ["--redis", redis_url, "--namespace", namespace, "--log-level", "warning"]
    worker = subprocess.Popen(command, env=env)
    try:
        ids = await client.enqueue_many([(jt.add, {"x": i}) for i in range(50)])
        assert [await client.result(i, timeout=60) for i in ids] == [i + 1 for i in range(50)]
    finally:
        worker.terminate()
        assert await asyncio.to_thread(worker.wait, 30) == 0
